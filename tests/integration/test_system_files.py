"""/etc/environment and /etc/resolv.conf changed by a task are honoured by later tasks.

Vanilla starts a new process (and login) per task, which reads both afresh; the
persistent interpreter follows them (``module_utils/mitogen/_sysenv.py``). The host
gets private copies of the two files and a DNS responder in its network namespace.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

ANSWER = "192.0.2.7"


def test_etc_environment_and_resolv_conf_changes_reach_later_tasks(make_testbed, tmp_path):
    tb = make_testbed(hosts=1, private_etc=("environment", "resolv.conf"))
    host = tb["h1"]
    responder = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            host.netns,
            sys.executable,
            "-I",
            __file__.replace("test_system_files.py", "dns_responder.py"),
            "127.0.0.1",
            ANSWER,
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert responder.stdout is not None and responder.stdout.readline() == b"ready\n"
        inv = inventory(tb, tmp_path / "hosts", hosts=("h1",))
        rc, stats, output = run_playbook(tmp_path, inv, "system_files/system_files.yml", "-e", "dns_answer=%s" % ANSWER)
        assert rc == 0 and stats["h1"]["failed"] == 0, output[-3000:]
    finally:
        responder.kill()
        responder.wait()
        if responder.stdout is not None:
            responder.stdout.close()
    assert "NSM_ETC_ENV" not in open("/etc/environment").read()  # the real file was never touched
