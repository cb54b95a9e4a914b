"""Large transfers report their progress at -v: bytes done and total, rate, time left.

A put and a fetch of 100 MiB (over ``_progress.MINIMUM``) with a short interval
(``NS_MITOGEN_PROGRESS_INTERVAL``): each shows lines, and their numbers add up. The
fetch is ``ns.mitogen.fetch`` with become: streamed from the root interpreter.
"""

from __future__ import annotations

import os
import re

from tests.integration.test_ansible_connection import inventory, run_playbook

MIB = 1024 * 1024
LINE = re.compile(
    r"^<[^>]+> ns\.mitogen (PUT|FETCH) (\S+): ([\d.]+) of ([\d.]+) MiB \((\d+)%\), ([\d.]+) MiB/s, (\d+) s left$", re.M
)


def test_large_put_and_fetch_show_progress_at_v(testbed, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as fp:
        for _unused in range(100):
            fp.write(os.urandom(MIB))
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    args = ["-v", "-e", "nsm_big=%s" % big, "-e", "nsm_fetched=%s" % fetched]
    rc, _recap, log = run_playbook(tmp_path, inv, "progress.yml", *args, env={"NS_MITOGEN_PROGRESS_INTERVAL": "0.02"})
    assert rc == 0, log[-3000:]
    assert (fetched / "h1" / "tmp" / "nsm-progress").stat().st_size == 100 * MIB
    lines = LINE.findall(log)
    print("\n".join(" ".join(line) for line in lines))
    for kind in ("PUT", "FETCH"):
        mine = [line for line in lines if line[0] == kind]
        assert mine, "no %s progress line in:\n%s" % (kind, log[-3000:])
        done = [float(line[2]) for line in mine]
        assert done == sorted(done) and 0 < done[-1] <= 100.0
        assert all(float(line[3]) == 100.0 for line in mine)
        assert all(float(line[5]) > 0 for line in mine)
        assert all(abs(int(line[4]) - float(line[2])) <= 1 for line in mine)  # the percentage of 100 MiB


def test_small_transfers_show_no_progress(testbed, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(MIB))
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    args = ["-v", "-e", "nsm_big=%s" % big, "-e", "nsm_fetched=%s" % fetched]
    rc, _recap, log = run_playbook(tmp_path, inv, "progress.yml", *args, env={"NS_MITOGEN_PROGRESS_INTERVAL": "0.02"})
    assert rc == 0, log[-3000:]
    assert "MiB/s" not in log
