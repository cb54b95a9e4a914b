"""su and doas as persistent become interpreters, with real users, real su and doas.

Through ansible-playbook (ns.mitogen.ssh, the installed collection): su with a password
to a second user, doas with and without one, interpreter reuse, wrong and missing
passwords (failing fast, naming host, method and user), PAM's German prompt (the
login runs with LC_ALL=de_DE.UTF-8, sent by ssh). Core-level: the German prompt's own
words, and prompts no real su here prints
(no colon, a non-breaking space) from a stand-in su that checks the password and that
no process's command line holds it, then execs the real su.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from tests.integration.test_ansible_connection import ROOT, inventory, run_playbook

pytestmark = pytest.mark.testbed

PY = "/usr/bin/python3"
INSTALLED = os.pathsep.join([os.path.join(ROOT, ".build", "installed"), os.path.join(ROOT, ".build", "collections")])
BOUND = 10.0  # a wrong or missing password fails this fast, with a 60 s timeout


def _run(tb, tmp_path, playbook, *args, **inv_vars):
    inv = inventory(tb, tmp_path / "inv", hosts=("h1",), ansible_timeout=60, **inv_vars)
    return run_playbook(tmp_path, inv, playbook, *args, env={"ANSIBLE_COLLECTIONS_PATH": INSTALLED})


def test_su_and_doas_through_ansible_playbook(testbed, tmp_path):
    extra = ["-e", "su_password=%s doas_password=%s" % (testbed.users.su.password, testbed.users.sudopw.password)]
    rc, recap, output = _run(testbed, tmp_path, "become_su_doas.yml", *extra)
    assert rc == 0 and recap["h1"]["failed"] == 0 and recap["h1"]["ok"] == 9, output


@pytest.mark.parametrize(
    "method,user,login,password,words",
    [
        ("su", "nsm-su", "nsm-key", "wrong-password", "Incorrect su password for user 'nsm-su'"),
        ("su", "nsm-su", "nsm-key", None, "Missing su password"),
        ("community.general.doas", "root", "nsm-sudopw", "wrong-password", "Incorrect doas password for user 'root'"),
        ("community.general.doas", "root", "nsm-sudopw", None, "Missing doas password"),
    ],
    ids=["su-wrong", "su-missing", "doas-wrong", "doas-missing"],
)
def test_wrong_or_missing_password_fails_fast_naming_host_method_and_user(
    testbed, tmp_path, method, user, login, password, words
):
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: id -un\n      become: true\n"
    )
    inv_vars = dict(ansible_user=login, ansible_become_method=method, ansible_become_user=user)
    if password:
        inv_vars["ansible_become_pass"] = password
    start = time.monotonic()
    rc, recap, output = _run(testbed, tmp_path, str(playbook), **inv_vars)
    elapsed = time.monotonic() - start
    assert rc != 0 and recap["h1"]["ok"] == 0 and recap["h1"]["failed"] == 1, output  # FAILED, as vanilla's
    assert words in output and "fatal: [h1]: FAILED!" in output, output
    assert elapsed < BOUND + 5, "took %.1f s (ansible-playbook's own start included)" % elapsed
    assert "wrong-password" not in output


@pytest.fixture
def session():
    s = api.Session(connect_timeout=60)
    try:
        yield s
    finally:
        s.close()


def test_su_german_prompt(testbed, session, monkeypatch):
    """PAM speaks German (``Passwort:``, ``Fehler bei Authentifizierung``) under de_DE.UTF-8."""
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")  # the local interpreter's, kept by sudo for su
    via = session.sudo(session.local(python=PY), username=testbed.users.key.name)
    su = {"method": "su", "username": testbed.users.su.name, "python": PY}
    ctx = session.connect(dict(su, password=testbed.users.su.password), via)
    assert ctx.call(os.getuid) == testbed.users.su.uid
    start = time.monotonic()
    with pytest.raises(ConnectError, match="Incorrect su password for user 'nsm-su'") as info:
        session.connect(dict(su, password="falsch"), via)
    assert time.monotonic() - start < BOUND
    assert "Fehler bei Authentifizierung" in str(info.value) and "Passwort:" in str(info.value)


def test_su_german_prompt_through_ansible_playbook(testbed, tmp_path):
    """The login runs in German (ssh sends LC_ALL, the testbed's sshd accepts it): su's
    PAM prompt is ``Passwort:``, answered; a wrong password still fails with vanilla's words."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: env\n      become: true\n      register: env\n      changed_when: false\n"
        "    - ansible.builtin.assert:\n        that: ['\"LC_ALL=de_DE.UTF-8\" in env.stdout_lines']\n"
    )
    common = "-o UserKnownHostsFile=%s -o SendEnv=LC_ALL" % testbed.known_hosts
    su = dict(ansible_user=testbed.users.key.name, ansible_become_method="su", ansible_become_user=testbed.users.su.name)
    for password, ok in ((testbed.users.su.password, True), ("falsch", False)):
        inv = inventory(testbed, tmp_path / "inv", hosts=("h1",), ansible_timeout=60, ansible_ssh_common_args=common,
                        ansible_become_pass=password, **su)  # fmt: skip
        env = {"ANSIBLE_COLLECTIONS_PATH": INSTALLED, "LC_ALL": "de_DE.UTF-8"}
        rc, recap, output = run_playbook(tmp_path, inv, str(playbook), env=env)
        if ok:
            assert rc == 0 and recap["h1"]["ok"] == 2, output
        else:
            assert recap["h1"]["failed"] == 1 and "Incorrect su password for user 'nsm-su'" in output, output


# A stand-in su: prints PROMPT on stderr, reads the password on stdin, fails the start if
# any process's command line holds it, then execs the real su (as root: no prompt).
STANDIN = r"""#!/usr/bin/python3
import os, sys
PASSWORD = %(password)r
sys.stderr.write(%(prompt)r)
sys.stderr.flush()
typed = sys.stdin.readline().rstrip("\n")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open("/proc/%%s/cmdline" %% pid, "rb") as f:
            if PASSWORD.encode() in f.read():
                sys.stderr.write("standin: the password is in the command line of pid %%s\n" %% pid)
                sys.exit(2)
    except OSError:
        pass
if typed != PASSWORD:
    sys.stderr.write("su: Authentication failure\n")
    sys.exit(1)
os.execv("/usr/bin/su", ["su"] + sys.argv[1:])
"""


@pytest.mark.parametrize(
    "prompt",
    ["Mot de passe\u00a0: ", "Password", "Пароль "],
    ids=["nbsp", "no_colon", "cyrillic_no_colon"],
)
def test_su_prompt_standin(testbed, session, tmp_path, prompt):
    password = "standin-Pass-%d" % os.getpid()
    exe = tmp_path / "su-standin"
    exe.write_text(STANDIN % {"password": password, "prompt": prompt})
    exe.chmod(stat.S_IRWXU)
    os.chmod(tmp_path, 0o755)
    via = session.local(python=PY)
    spec = {"method": "su", "username": testbed.users.su.name, "su_path": str(exe), "python": PY}
    ctx = session.connect(dict(spec, password=password), via)
    assert ctx.call(os.getuid) == testbed.users.su.uid
    start = time.monotonic()
    with pytest.raises(ConnectError, match="Incorrect su password"):
        session.connect(dict(spec, password="not-" + password), via)
    assert time.monotonic() - start < BOUND
    with pytest.raises(ConnectError, match=re.escape("Missing su password")):
        session.connect(spec, via)


def test_su_flag_that_cannot_apply_fails_the_task_saying_why(testbed, tmp_path):
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: id -un\n      become: true\n      become_flags: '-P'\n"
        "      ignore_errors: true\n      register: refused\n"
        "    - ansible.builtin.command: id -un\n      become: true\n      become_flags: '-'\n      register: login\n"
        "    - ansible.builtin.assert:\n        that: login.stdout == 'nsm-su'\n"
    )
    inv_vars = dict(ansible_user="nsm-key", ansible_become_method="su", ansible_become_user="nsm-su")
    inv_vars["ansible_become_pass"] = testbed.users.su.password
    rc, recap, output = _run(testbed, tmp_path, str(playbook), **inv_vars)
    assert rc == 0 and recap["h1"]["ok"] == 3 and recap["h1"]["ignored"] == 1, output
    assert "become_flags '-P' cannot apply to a persistent su interpreter" in output, output
    assert "mangle its binary stream" in output, output


@pytest.mark.parametrize(
    "method,login,exe,words",
    [
        ("community.general.doas", "nsm-key", "doas", "Operation not permitted"),  # no doas.conf rule for nsm-key
        ("su", "nsm-key", "/nonexistent/su", "/nonexistent/su"),  # the shell's or our words, naming it
    ],
    ids=["doas-not-permitted", "su-missing-binary"],
)
def test_tool_failure_is_a_module_failure_as_vanillas(testbed, tmp_path, method, login, exe, words):
    """The become tool itself failing (not a password) fails the task as vanilla's does:
    FAILED with the tool's rc and its own words in the module's output, not UNREACHABLE."""
    results = {}
    for name, connection in (("vanilla", "ansible.builtin.ssh"), ("ours", "ns.mitogen.ssh")):
        out = tmp_path / ("%s.json" % name)
        playbook = tmp_path / ("%s.yml" % name)
        playbook.write_text(
            "- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.command: id -un\n      become: true\n      ignore_errors: true\n      register: r\n"
            "    - ansible.builtin.copy:\n        content: '{{ r | to_json }}'\n        dest: %s\n"
            "      delegate_to: localhost\n" % out
        )
        inv_vars = dict(
            ansible_connection=connection,
            ansible_user=login,
            ansible_become_method=method,
            ansible_become_user="root" if "doas" in method else "nsm-su",
            ansible_become_exe=exe,
            ansible_become_pass=testbed.users.su.password,
            # vanilla's su cannot pipeline: to an unprivileged user it needs this to get that far
            ansible_shell_allow_world_readable_temp="true",
        )
        rc, recap, output = _run(testbed, tmp_path, str(playbook), **inv_vars)
        assert recap["h1"]["unreachable"] == 0 and recap["h1"]["ignored"] == 1, output
        results[name] = json.loads(out.read_text())
    vanilla, ours = results["vanilla"], results["ours"]
    assert ours["failed"] and vanilla["failed"]
    assert ours.get("rc") == vanilla.get("rc"), (vanilla, ours)
    for result in (vanilla, ours):
        assert words in result.get("module_stdout", "") + result.get("module_stderr", ""), result
    assert ours["msg"] == vanilla["msg"], (vanilla, ours)
