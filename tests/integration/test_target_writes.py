"""Nothing is written to a target beyond what vanilla pipelining would write.

Runs the connection playbook against a fresh testbed host and lists every path the
run created in the host's private /tmp, /home and /root, minus what the playbook
itself creates; whatever remains must be on the checked-in allow-list, where every
entry says why it is there.
"""

from __future__ import annotations

import fnmatch
import os

import pytest
import yaml

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

HERE = os.path.dirname(os.path.abspath(__file__))


def snapshot(host) -> set:
    found = set()
    for label, root in (("tmp", host.tmp_dir), ("home", host.home_dir), ("root", host.root_home_dir)):
        for dirpath, dirnames, filenames in os.walk(str(root)):
            rel = os.path.relpath(dirpath, str(root))
            if rel.startswith(".pyenv"):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                found.add(os.path.normpath(os.path.join(label, rel, name)))
    return found


def test_run_writes_only_allowed_paths(make_testbed, tmp_path):
    tb = make_testbed(hosts=1)
    host = tb["h1"]
    before = snapshot(host)
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",))
    rc, stats, output = run_playbook(tmp_path, inv, "connection_basics.yml", "-e", "fetch_dir=%s" % (tmp_path / "f"))
    assert rc == 0, output[-3000:]
    with open(os.path.join(HERE, "target_writes_allowed.yml")) as fp:
        allowed = yaml.safe_load(fp)
    assert all(entry.get("reason") for entry in allowed), "every allow-list entry needs a reason"
    created = {p for p in snapshot(host) - before if not p.startswith("tmp/nsm-conn")}
    unexpected = sorted(p for p in created if not any(fnmatch.fnmatch(p, e["path"]) for e in allowed))
    assert not unexpected, "the run wrote paths that are not on the allow-list: %s" % unexpected


def test_async_jobs_write_only_their_job_files(make_testbed, tmp_path):
    """Async tasks, polled and not, with become to an unprivileged user: only vanilla's job files."""
    tb = make_testbed(hosts=1)
    host = tb["h1"]
    before = snapshot(host)
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",))
    rc, _stats, output = run_playbook(tmp_path, inv, "async_target_writes.yml")
    assert rc == 0, output[-3000:]
    with open(os.path.join(HERE, "target_writes_allowed.yml")) as fp:
        allowed = yaml.safe_load(fp)
    created = snapshot(host) - before
    unexpected = sorted(p for p in created if not any(fnmatch.fnmatch(p, e["path"]) for e in allowed))
    assert not unexpected, "the run wrote paths that are not on the allow-list: %s" % unexpected
    assert any(fnmatch.fnmatch(p, "home/nsm-sudo/.ansible_async/j*") for p in created)  # the job left for later
