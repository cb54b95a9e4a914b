"""The zygote beside each interpreter: fork isolation and async jobs, on real testbed hosts.

Playbooks in tests/integration/playbooks (``zygote_isolation.yml``, ``async_*.yml``)
with the test module ``library/nsm_pidinfo.py`` (which process runs it). How vanilla
reports async jobs (time limits, status, cleanup) is compared in the differential
playbooks ``async.yml`` and ``async_limits.yml``; these check what only ns.mitogen has:
which process runs a module, jobs that outlive the run and its interpreters (read by
a later run over vanilla's ssh connection), many hosts' jobs at once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner, _zygote
from tests.integration.runner_support import TARGET_PY, decode, extra_context, full_args, make_request, module_path
from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed


def test_fork_isolation_runs_the_module_in_a_child_of_the_zygote(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    out = tmp_path / "out.json"
    rc, stats, output = run_playbook(tmp_path, inv, "zygote_isolation.yml", "-vvv", "-e", "out_file=%s" % out)
    assert rc == 0 and stats["h1"]["failed"] == 0, output[-4000:]
    r = json.loads(out.read_text())
    interpreter = r["before"]["pid"]
    assert r["after"]["pid"] == interpreter  # the interpreter is the same one
    forked = r["forked"]
    assert forked["pid"] != interpreter
    assert forked["ppid"] != interpreter and forked["grandparent"] == interpreter  # a child of the zygote
    assert forked["fired"] is True  # signal.alarm works in a fork
    assert r["alarm_in_process"]["failed"]
    assert "mitogen_task_isolation=fork" in json.dumps(r["alarm_in_process"])  # the advice points at what works
    listed = r["listed"]
    assert listed["pid"] != interpreter and listed["grandparent"] == interpreter
    assert r["dnf"]["failed"]
    assert "RUN ansible.modules.dnf in a fork" in output, [line for line in output.splitlines() if "dnf" in line]
    assert "RUN ansible.legacy.nsm_pidinfo in process" in output


def test_async_job_outlives_its_run_and_a_later_vanilla_run_reads_it(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    started = tmp_path / "started.json"
    t0 = time.monotonic()
    rc, _stats, output = run_playbook(tmp_path, inv, "async_start.yml", "-vvv", "-e", "out_file=%s" % started)
    assert rc == 0, output[-4000:]
    assert time.monotonic() - t0 < 30
    assert "as an async job" in output
    job = json.loads(started.read_text())
    assert job["started"] and not job["finished"] and job["changed"]
    home = "/home/%s" % testbed.users.sudo.name
    assert job["results_file"] == os.path.join(home, ".ansible_async", job["ansible_job_id"])

    # a later run, with vanilla's ssh connection: the job outlived the run and its interpreter
    vanilla = inventory(testbed, tmp_path / "hosts-vanilla", hosts=("h1",), ansible_connection="ssh")
    later = tmp_path / "later.json"
    rc, _stats, output = run_playbook(
        tmp_path, vanilla, "async_later.yml", "-e", "out_file=%s" % later, "-e", "jid=%s" % job["ansible_job_id"]
    )
    assert rc == 0, output[-4000:]
    r = json.loads(later.read_text())
    assert r["status"]["finished"] and r["status"]["stdout"] == "late on h1" and r["status"]["rc"] == 0
    assert r["cleanup"]["erased"] == job["results_file"]
    assert r["gone"]["failed"] and r["gone"]["msg"] == "could not find job"


def test_a_job_over_its_time_limit_leaves_nothing_running(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    seconds = "37.%06d" % random.randrange(1000000)
    t0 = time.monotonic()
    rc, stats, output = run_playbook(tmp_path, inv, "async_killed.yml", "-e", "seconds=%s" % seconds)
    assert rc == 0 and stats["h1"]["failed"] == 0, output[-4000:]
    assert time.monotonic() - t0 < 30


def test_async_jobs_on_ten_hosts_at_once(make_testbed, tmp_path):
    tb = make_testbed(hosts=10)
    hosts = tuple("h%d" % i for i in range(1, 11))
    inv = inventory(tb, tmp_path / "hosts", hosts=hosts)
    rc, stats, output = run_playbook(tmp_path, inv, "async_many.yml", "-f", "10")
    assert rc == 0, output[-4000:]
    for host in hosts:
        assert stats[host]["failed"] == 0 and stats[host]["ok"] == 4, (host, output[-4000:])


def test_a_fork_run_whose_zygote_is_gone_fails_saying_so(session, tmp_path):
    """The zygote killed: a fork run fails with the reason, runs in the interpreter go on."""
    with extra_context(session, lambda s: s.local(python=TARGET_PY)) as ctx:
        zygote = ctx.call(_zygote.zygote_pid)
        assert zygote and zygote != ctx.call(os.getpid)
        request = make_request(module_path("ping"), full_args({}, "ping", str(tmp_path)))
        assert decode(ctx.call(_runner.run_module, dict(request, fork=True))["stdout"])["ping"] == "pong"
        os.kill(zygote, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.path.exists("/proc/%d" % zygote) and _state_of(zygote) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = ctx.call(_runner.run_module, dict(request, fork=True))
        assert reply["rc"] == 1
        assert "zygote (pid %d) is gone" % zygote in decode(reply["stdout"])["msg"]
        assert decode(ctx.call(_runner.run_module, request)["stdout"])["ping"] == "pong"
        assert not os.path.exists("/proc/%d" % zygote)  # reaped, not left a zombie


def _state_of(pid: int) -> str:
    try:
        with open("/proc/%d/stat" % pid) as fp:
            return fp.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
