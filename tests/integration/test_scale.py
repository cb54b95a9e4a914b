"""Many hosts: the multiplexer's open-file limit, and (full matrix) a play on 300 hosts.

Real ``ansible-playbook`` runs under ``ns.mitogen.linear`` on testbed hosts.

- The mux raises its open-file soft limit to the hard one as it starts (-vvv says
  so); where the hard limit cannot cover the hosts, the hosts beyond it fail with
  an error naming the limit and how to raise it, never an EMFILE traceback, and
  the others succeed.
- ``MITOGEN_CPU_COUNT=2`` (option ``cpu_count``): two muxes, each serving the hosts
  its index hashes to, each host's login and become interpreters in the same one.
- ``NSM_FULL_MATRIX=1``: a short play (a module, a file copy, a command, a read
  back) on 300 hosts with 50 forks, every host's result checked, and the mux's
  starts at once bounded by ``pool_size`` (16) and reaching it. Measured on the
  2 shared cores under a load of 10-19: bring-up 19-30 s, play 162-236 s, 3-5.3
  min in all; too long for the default run's 2 minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest

from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux
from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

FULL = os.environ.get("NSM_FULL_MATRIX") == "1"


def _check_every_host(tb, names, stats, output):
    for name in names:
        assert stats[name] == {**stats[name], "ok": 5, "failed": 0, "unreachable": 0}, (name, output[-3000:])
        assert (tb[name].tmp_dir / "nsm-scale.txt").read_text() == name + "\n"


def test_the_mux_raises_its_open_file_limit_and_says_so(make_testbed, tmp_path):
    tb = make_testbed(hosts=2)
    inv = inventory(tb, tmp_path / "hosts", hosts=tb.names)
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed"
    rc, stats, output = run_playbook(
        tmp_path,
        inv,
        "scale_short.yml",
        "-vvv",
        env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"},
        wrap=[prlimit, "--nofile=256:4096", "--"],
    )
    assert rc == 0, output[-4000:]
    _check_every_host(tb, tb.names, stats, output)
    assert "multiplexer started, its open-file limit (RLIMIT_NOFILE) 4096 (from 256)" in output


def test_too_low_an_open_file_limit_fails_the_hosts_beyond_it_by_name(make_testbed, tmp_path):
    """Hard limit 128: the mux keeps 64 free and fits about 14 hosts' connections; the
    other of the 40 hosts (more than 128 descriptors: the test fails without the check) are unreachable naming RLIMIT_NOFILE and how to raise it, none
    with an EMFILE traceback; the hosts it fits run the whole play."""
    tb = make_testbed(hosts=40)
    inv = inventory(tb, tmp_path / "hosts", hosts=tb.names)
    rc, stats, output = run_playbook(
        tmp_path,
        inv,
        "scale_short.yml",
        "-f",
        "10",
        env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"},
        wrap=[shutil.which("prlimit") or "prlimit", "--nofile=128:128", "--"],
    )
    good = [n for n in tb.names if stats[n]["unreachable"] == 0]
    bad = [n for n in tb.names if n not in good]
    assert len(good) >= 8 and len(bad) >= 8, output[-4000:]
    _check_every_host(tb, good, stats, output)
    assert rc == 4
    assert "Too many open files" not in output and "Traceback" not in output, output[-4000:]
    unreachable = re.findall(
        r"^fatal: \[(h\d+)\]: UNREACHABLE! .*is out of open files: \d+ in use, its open-file limit "
        r"\(RLIMIT_NOFILE\) is 128 \(hard limit 128.*ulimit -Hn",
        output,
        re.M,
    )
    assert sorted(unreachable) == sorted(bad), output[-4000:]


def test_two_muxes_each_serve_their_hosts_whole(make_testbed, tmp_path):
    """MITOGEN_CPU_COUNT=2: both muxes serve, each host's two interpreters (login and
    root) are in the one its name hashes to, and every host's results are right."""
    tb = make_testbed(hosts=10)
    inv = inventory(tb, tmp_path / "hosts", hosts=tb.names)
    report = tmp_path / "mux.jsonl"
    env = {"ANSIBLE_STRATEGY": "ns.mitogen.linear", "MITOGEN_CPU_COUNT": "2", "NS_MITOGEN_MUX_RUSAGE": str(report)}
    rc, stats, output = run_playbook(tmp_path, inv, "scale_become.yml", "-f", "10", env=env)
    assert rc == 0, output[-4000:]
    for name in tb.names:
        assert stats[name]["ok"] == 4 and stats[name]["failed"] == 0, (name, output[-3000:])
        assert (tb[name].tmp_dir / "nsm-scale.txt").read_text() == name + "\n"
    assert "MITOGEN_CPU_COUNT" not in output  # honoured, not warned about
    deadline = time.monotonic() + 10
    while len(report.read_text().splitlines() if report.exists() else []) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # each writes its line as it exits, after the run
    muxes = [json.loads(line)["started_for"] for line in report.read_text().splitlines()]
    assert len(muxes) == 2 and all(muxes), muxes
    by_address = {tb[n].address: n for n in tb.names}
    served = [{by_address[a] for a in m} for m in muxes]
    assert served[0].isdisjoint(served[1]) and served[0] | served[1] == set(tb.names), served
    assert all(count == 2 for m in muxes for count in m.values()), muxes
    expected = [{n for n in tb.names if _mux.mux_index(n, 2) == i} for i in (0, 1)]
    assert sorted(map(sorted, served)) == sorted(map(sorted, expected))


@pytest.mark.skipif(not FULL, reason="300 hosts: NSM_FULL_MATRIX=1 (see the module's docstring for its time)")
def test_a_short_play_on_300_hosts(make_testbed, tmp_path):
    started = time.monotonic()
    tb = make_testbed(hosts=300)
    up = time.monotonic() - started
    inv = inventory(tb, tmp_path / "hosts", hosts=tb.names)
    started = time.monotonic()
    report = tmp_path / "mux.jsonl"
    # ANSIBLE_TIMEOUT 30: on the 2 shared cores under a load of 15-19, a few of 300 targets
    # did not finish their handshake within the default 10 s's share (6.6 s).
    env = {"ANSIBLE_STRATEGY": "ns.mitogen.linear", "NS_MITOGEN_MUX_RUSAGE": str(report), "ANSIBLE_TIMEOUT": "30"}
    rc, stats, output = run_playbook(tmp_path, inv, "scale_short.yml", "-f", "50", env=env, timeout=900)
    played = time.monotonic() - started
    assert rc == 0, "\n".join(re.findall(r"^fatal: .*$", output, re.M)[:10]) or output[-4000:]
    _check_every_host(tb, tb.names, stats, output)
    deadline = time.monotonic() + 10
    while not report.exists() and time.monotonic() < deadline:  # written as the mux exits, after the run
        time.sleep(0.1)
    (mux,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert mux["pool_size"] == 16 and mux["peak_starts"] == 16, mux  # 50 forks asking: bounded, and reached
    print("300 hosts: bring-up %.1f s, play %.1f s" % (up, played))
