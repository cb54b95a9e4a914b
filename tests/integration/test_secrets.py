"""No secret of a play in any file or output ns.mitogen's diagnostics produce.

A run with every diagnostic on (``NS_MITOGEN_LOG_DIR``, ``-vvvv``, Ansible's own
``log_path``) and every kind of secret in play: an ssh login password, a become
password, ``no_log`` values in module arguments, a raw command and a file's
content. Then a grep over everything the run wrote finds none of them, and the
debug log files are private to their owner (0600).
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

NOLOG_SECRET = "nsm-nolog-7f3a9c"  # nothing else in a run looks like it


def test_no_secret_in_debug_logs_or_vvvv_output(testbed, tmp_path):
    users = testbed.users
    inv = tmp_path / "hosts"
    inventory(testbed, inv, hosts=())
    inv.write_text(
        inv.read_text().replace(
            "[all:vars]",
            "h_pw ansible_host=%s ansible_user=%s ansible_password=%s ansible_become_user=%s\n"
            "h_become ansible_host=%s ansible_user=%s ansible_become_password=%s\n"
            "[all:vars]\nnolog_secret=%s"
            % (
                testbed["h1"].address,
                users.pw.name,
                users.pw.password,
                users.pw.name,  # no become password known: become to itself (sudo not asked)
                testbed["h2"].address,
                users.sudopw.name,
                users.sudopw.password,
                NOLOG_SECRET,
            ),
        )
    )
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)  # made by the user beforehand, readable by all: the files must still be private
    rc, stats, output = run_playbook(
        tmp_path,
        str(inv),
        "secrets.yml",
        "-vvvv",
        env={"NS_MITOGEN_LOG_DIR": str(logs), "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log")},
    )
    assert rc == 0, output[-4000:]
    files = sorted(logs.iterdir())
    assert any(f.name.startswith("mux-") for f in files) and any(f.name.startswith("worker-") for f in files), files
    texts = {"-vvvv output": output, "ansible.log": (tmp_path / "ansible.log").read_text()}
    texts.update((f.name, f.read_text(errors="replace")) for f in files)
    secrets = {"ssh password": users.pw.password, "become password": users.sudopw.password, "no_log value": NOLOG_SECRET}
    leaks = [
        "%s in %s: %s" % (what, name, line[:300])
        for name, text in texts.items()
        for line in text.splitlines()
        for what, secret in secrets.items()
        if secret in line
    ]
    assert not leaks, "\n".join(leaks)
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, "%s is %o" % (f.name, stat.S_IMODE(os.stat(f).st_mode))
