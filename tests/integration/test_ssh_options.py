"""ssh options of ns.mitogen.ssh, read from the REAL ssh command line on the controller.

Every run uses an ``ssh_executable`` wrapper that appends its argv (one JSON line per
ssh started) to a file and execs the real ssh, against the testbed's real sshd.
``ssh -G`` over a recorded argv then says which value OpenSSH itself keeps.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.integration.test_ansible_connection import BIN, playbook_environ

pytestmark = pytest.mark.testbed

from ansible.release import __version__  # noqa: E402 - the ansible-core of BIN

ANSIBLE_VERSION = tuple(int(p) for p in __version__.split(".")[:2])

WHOAMI = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: id -un
      register: who
    - ansible.builtin.assert:
        that: who.stdout == {user!r}
"""


class Run:
    """One ansible-playbook run through the argv-recording ssh wrapper."""

    def __init__(self, testbed, tmp_path, args=(), env=None, playbook=None, fail_once=None, **host_vars):
        self.log = tmp_path / "ssh-argv.jsonl"
        wrapper = tmp_path / "ssh-wrapper"
        # fail_once: the first ssh whose remote command holds this text exits 255 (as
        # ssh does when it cannot connect) instead of running: a transient failure
        failing = ""
        if fail_once:
            failing = (
                "if %r in sys.argv[-1] and not os.path.exists(%r):\n"
                "    open(%r, 'w').close(); sys.stderr.write('ssh: connect to host: Connection refused\\n'); sys.exit(255)\n"
                % (fail_once, str(tmp_path / "failed-once"), str(tmp_path / "failed-once"))
            )
        wrapper.write_text(
            "#!%s\nimport json, os, sys\nwith open(%r, 'a') as fp:\n    fp.write(json.dumps(sys.argv[1:]) + '\\n')\n"
            "%sos.execvp('ssh', ['ssh'] + sys.argv[1:])\n" % (sys.executable, str(self.log), failing)
        )
        wrapper.chmod(0o755)
        user = testbed.users.sudo.name
        host = {
            "ansible_host": testbed["h1"].address,
            "ansible_connection": "ns.mitogen.ssh",
            "ansible_user": user,
            "ansible_ssh_private_key_file": str(testbed.key),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % testbed.known_hosts,
            "ansible_ssh_executable": str(wrapper),
        }
        host.update(host_vars)
        host = {k: v for k, v in host.items() if v is not None}
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {"h1": host}}}))
        if playbook is None:
            playbook = tmp_path / "whoami.yml"
            playbook.write_text(WHOAMI.format(user=user))
        environ = playbook_environ(tmp_path, env)
        started = time.monotonic()
        out = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=300,
            check=False,
        )
        self.seconds = time.monotonic() - started
        self.rc = out.returncode
        self.output = out.stdout + out.stderr

    @property
    def argvs(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    @property
    def argv(self):
        argvs = self.argvs
        assert len(argvs) == 1, "expected one ssh, got %r\n%s" % (argvs, self.output[-3000:])
        return argvs[0]

    def effective(self, key):
        """What OpenSSH makes of the recorded options (``ssh -G``): the value of ``key``."""
        args = self.argv
        options = args[: args.index("--")]
        out = subprocess.run(
            ["ssh", "-G", *options, "--", args[args.index("--") + 1]], capture_output=True, text=True, check=True
        )
        values = [line.split(None, 1)[1] for line in out.stdout.splitlines() if line.split(None, 1)[0] == key.lower()]
        return values[0] if len(values) == 1 else values

    def ok(self):
        assert self.rc == 0, self.output[-4000:]
        return self


def test_user_options_win_over_ours(testbed, tmp_path):
    """Regression: ours came first, so OpenSSH kept them and ignored the user's.

    With an empty known_hosts, our StrictHostKeyChecking=yes would refuse the host:
    the user's StrictHostKeyChecking=no (in ssh_common_args) must win, as with vanilla.
    """
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    run = Run(
        testbed,
        tmp_path,
        ansible_ssh_args="-o ServerAliveInterval=60",
        ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=%s" % empty,
        ansible_ssh_extra_args="-o ServerAliveCountMax=5",
    ).ok()
    assert run.effective("ServerAliveInterval") == "60"
    assert run.effective("ServerAliveCountMax") == "5"
    assert run.effective("StrictHostKeyChecking") == "false"
    assert run.effective("UserKnownHostsFile") == str(empty)
    argv = run.argv
    assert argv.index("ServerAliveInterval=60") < argv.index("ServerAliveInterval=30")


def test_proxy_command_is_used(testbed, tmp_path):
    relay = tmp_path / "relay.py"
    marker = tmp_path / "relay-used"
    relay.write_text(
        "import os, selectors, socket, sys\n"
        "open(%r, 'w').write(' '.join(sys.argv[1:]))\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "sel = selectors.DefaultSelector(); sel.register(0, 1); sel.register(s, 1)\n"
        "while True:\n"
        "    for key, _ in sel.select():\n"
        "        if key.fileobj == 0:\n"
        "            data = os.read(0, 65536)\n"
        "            if not data: s.shutdown(socket.SHUT_WR); sel.unregister(0); continue\n"
        "            s.sendall(data)\n"
        "        else:\n"
        "            data = s.recv(65536)\n"
        "            if not data: sys.exit(0)\n"
        "            os.write(1, data)\n" % str(marker)
    )
    common = "-o UserKnownHostsFile=%s -o ProxyCommand=%s" % (
        testbed.known_hosts,
        shlex.quote("%s %s %%h %%p" % (sys.executable, relay)),
    )
    run = Run(testbed, tmp_path, ansible_ssh_common_args=common).ok()
    assert marker.read_text() == "%s 22" % testbed["h1"].address
    assert run.effective("ProxyCommand").startswith(sys.executable)


def test_options_that_would_break_the_channel_are_dropped_with_a_warning(testbed, tmp_path):
    run = Run(
        testbed,
        tmp_path,
        ansible_ssh_args="-C -o ControlMaster=auto -o ControlPersist=60s",
        ansible_ssh_extra_args="-tt -o RequestTTY=force",
    ).ok()
    argv = run.argv
    assert not {"-tt", "-t", "-C", "RequestTTY=force", "ControlMaster=auto", "ControlPersist=60s"} & set(argv)
    assert "dropped '-t' from ssh_common_args / ssh_extra_args" in run.output
    assert "dropped '-o RequestTTY=force'" in run.output
    assert "ControlMaster" not in run.output  # documented, and in Ansible's default ssh_args: no warning


def test_keepalive_defaults_and_options(testbed, tmp_path):
    (tmp_path / "a").mkdir()
    run = Run(testbed, tmp_path / "a").ok()
    assert run.effective("ServerAliveInterval") == "30" and run.effective("ServerAliveCountMax") == "10"
    (tmp_path / "b").mkdir()
    run = Run(testbed, tmp_path / "b", mitogen_ssh_keepalive_interval=7, mitogen_ssh_keepalive_count=4).ok()
    assert run.effective("ServerAliveInterval") == "7" and run.effective("ServerAliveCountMax") == "4"


def test_verbosity_reaches_the_vvv_display(testbed, tmp_path):
    """ansible_ssh_verbosity gives ssh -vv, and its debug lines show at -vvv (as vanilla's do)."""
    (tmp_path / "a").mkdir()
    run = Run(testbed, tmp_path / "a", args=["-vvv"], ansible_ssh_verbosity=2).ok()
    assert "-vv" in run.argv[: run.argv.index("--")]
    assert "debug1: " in run.output and "debug2: " in run.output
    assert "SSH: EXEC " in run.output
    (tmp_path / "b").mkdir()
    quiet = Run(testbed, tmp_path / "b", ansible_ssh_verbosity=2).ok()  # no -vvv: nothing of it shown
    assert "debug1: " not in quiet.output
    (tmp_path / "c").mkdir()
    plain = Run(testbed, tmp_path / "c", args=["-vvv"]).ok()  # the normal path: no -v, no extra request
    assert not any(a.startswith("-v") for a in plain.argv) and "debug1: " not in plain.output


def test_mitogen_ssh_debug_level(testbed, tmp_path):
    run = Run(testbed, tmp_path, mitogen_ssh_debug_level=1).ok()
    assert "-v" in run.argv[: run.argv.index("--")]


def test_reconnection_retries_with_vanillas_backoff(testbed, tmp_path):
    """ssh failing (status 255: nothing listens on port 1) is tried again: 3 logins, pauses 0 s and 1 s."""
    run = Run(testbed, tmp_path, ansible_port=1, ansible_ssh_retries=2)
    assert run.rc == 4 and "UNREACHABLE" in run.output, run.output[-3000:]
    assert len(run.argvs) == 3 and "Connection refused" in run.output
    assert run.seconds >= 1.0
    (tmp_path / "once").mkdir()
    once = Run(testbed, tmp_path / "once", ansible_port=1)
    assert once.rc == 4 and len(once.argvs) == 1


def test_reconnection_retries_on_the_path_without_python(testbed, tmp_path):
    """raw where no Python runs (a one-shot ssh per command): ssh's own failure is retried there too."""
    playbook = tmp_path / "raw.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.raw: echo nsm-raw-ok\n      register: r\n"
        "    - ansible.builtin.assert:\n        that: \"'nsm-raw-ok' in r.stdout\"\n"
    )
    common = dict(ansible_python_interpreter="/nonexistent/bin/python3", playbook=playbook, fail_once="nsm-raw-ok")
    run = Run(testbed, tmp_path, ansible_ssh_retries=1, **common).ok()
    raw = [argv for argv in run.argvs if "nsm-raw-ok" in argv[-1]]
    assert len(raw) == 2  # failed once (status 255), then ran
    (tmp_path / "none").mkdir()
    none = Run(testbed, tmp_path / "none", **common)
    assert none.rc == 4 and "Connection refused" in none.output, none.output[-3000:]


def test_a_refused_password_is_not_retried(testbed, tmp_path):
    run = Run(
        testbed,
        tmp_path,
        ansible_user=testbed.users.pw.name,
        ansible_password="not-the-password",
        ansible_ssh_private_key_file="/nonexistent/key",
        ansible_ssh_retries=3,
    )
    assert run.rc == 4 and len(run.argvs) == 1, run.output[-3000:]


def test_pkcs11_provider_options_and_pin(testbed, tmp_path):
    """The PKCS#11 options go first, as vanilla's; a provider that does not load leaves the key login."""
    run = Run(
        testbed,
        tmp_path,
        ansible_ssh_pkcs11_provider="/nonexistent/opensc-pkcs11.so",
        ansible_password="1234",
    ).ok()
    assert run.argv[:8] == [
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "PKCS11Provider=/nonexistent/opensc-pkcs11.so",
    ]
    assert run.effective("PKCS11Provider") == "/nonexistent/opensc-pkcs11.so"


@pytest.mark.skipif(ANSIBLE_VERSION < (2, 19), reason="private_key needs ansible-core 2.19+ (SSH_AGENT)")
def test_private_key_goes_through_ansibles_ssh_agent(testbed, tmp_path):
    """An inline key is loaded into Ansible's agent and offered alone (IdentitiesOnly, its .pub as IdentityFile).

    With private_key_passphrase, the encrypted key is decrypted first (ansible-core needs
    the bcrypt module for OpenSSH's key format, in requirements-dev.txt); a wrong
    passphrase fails as vanilla's does, before any ssh runs.
    """
    encrypted = tmp_path / "key"
    encrypted.write_bytes(testbed.key.read_bytes())
    encrypted.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-f", str(encrypted), "-P", "", "-N", "nsm-Key-pass"], check=True, capture_output=True
    )
    # the agent's socket lives in the local temp dir: a short path (sun_path holds 108 bytes)
    local_tmp = tempfile.mkdtemp(prefix="nsm-", dir="/tmp")
    agent = {"ANSIBLE_SSH_AGENT": "auto", "ANSIBLE_LOCAL_TEMP": local_tmp}
    try:
        (tmp_path / "plain").mkdir()
        run = Run(
            testbed,
            tmp_path / "plain",
            env=agent,
            ansible_ssh_private_key_file=None,
            ansible_ssh_private_key=testbed.key.read_text(),
        ).ok()
        identity = [a for a in run.argv if a.startswith("IdentityFile=")]
        assert len(identity) == 1 and identity[0].endswith('.pub"') and "IdentitiesOnly=yes" in run.argv
        assert run.effective("IdentitiesOnly") == "yes"
        for name, passphrase in (("right", "nsm-Key-pass"), ("wrong", "not-it")):
            (tmp_path / name).mkdir()
            run = Run(
                testbed,
                tmp_path / name,
                env=agent,
                ansible_ssh_private_key_file=None,
                ansible_ssh_private_key=encrypted.read_text(),
                ansible_ssh_private_key_passphrase=passphrase,
            )
            if name == "right":
                run.ok()
            else:
                assert run.rc == 4 and "Failed to add configured private key into ssh-agent" in run.output and not run.argvs
    finally:
        shutil.rmtree(local_tmp, ignore_errors=True)
    (tmp_path / "off").mkdir()
    off = Run(testbed, tmp_path / "off", ansible_ssh_private_key_file=None, ansible_ssh_private_key=testbed.key.read_text())
    assert off.rc != 0 and "Cannot utilize private_key with SSH_AGENT disabled" in off.output and not off.argvs


@pytest.mark.parametrize(
    "host_vars,words",
    [
        (
            {"ansible_ssh_timeout": -1},
            "option timeout (from var: ansible_ssh_timeout) must be a whole number of seconds from 1 on, not -1",
        ),
        ({"ansible_ssh_timeout": 0}, "option timeout"),
        ({"mitogen_ssh_compression": "maybe"}, "option compression (from var: mitogen_ssh_compression) must be a boolean"),
        (
            {"ansible_host_key_checking": "perhaps"},
            "option host_key_checking (from var: ansible_host_key_checking) must be a boolean",
        ),
        ({"ansible_ssh_use_tty": "sometimes"}, "option use_tty"),
        ({"ansible_port": 0}, "option port (from var: ansible_port) must be a port number from 1 to 65535"),
        ({"ansible_port": 70000}, "option port"),
        ({"ansible_ssh_retries": -1}, "option reconnection_retries (from var: ansible_ssh_retries) must be a number of retries"),
        ({"ansible_ssh_verbosity": -2}, "option verbosity (from var: ansible_ssh_verbosity)"),
        (
            {"mitogen_ssh_debug_level": 9},
            "option ssh_debug_level (from var: mitogen_ssh_debug_level) must be a number of -v for ssh from 0 to 3",
        ),
        ({"mitogen_ssh_keepalive_interval": 0}, "option keepalive_interval (from var: mitogen_ssh_keepalive_interval)"),
        ({"mitogen_ssh_keepalive_count": -3}, "option keepalive_count (from var: mitogen_ssh_keepalive_count)"),
        ({"mitogen_ssh_keepalive_count": "many"}, "mitogen_ssh_keepalive_count"),
        ({"ansible_ssh_pkcs11_provider": "/lib/p11.so"}, "to use pkcs11_provider you must specify a password/pin"),
        ({"ansible_ssh_password_mechanism": "carrier-pigeon"}, "password_mechanism"),
    ],
)
def test_bad_option_values_fail_before_any_connection(testbed, tmp_path, host_vars, words):
    run = Run(testbed, tmp_path, **host_vars)
    assert run.rc != 0 and words in run.output, run.output[-3000:]
    assert run.argvs == []  # no ssh was started
    assert "timed out" not in run.output


def test_bad_value_from_the_environment_names_it(testbed, tmp_path):
    run = Run(testbed, tmp_path, env={"NS_MITOGEN_SSH_COMPRESSION": "maybe"})
    assert run.rc != 0 and "option compression (from env: NS_MITOGEN_SSH_COMPRESSION) must be a boolean" in run.output
    assert run.argvs == []


def test_host_key_hint_names_settings_a_user_has(testbed, tmp_path):
    """Regression: the hint said "set check_host_keys", which no Ansible user can set."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    run = Run(testbed, tmp_path, ansible_ssh_common_args="-o UserKnownHostsFile=%s" % empty)
    assert run.rc == 4 and "Host key verification failed" in run.output, run.output[-3000:]
    assert "host_key_checking" in run.output and "ANSIBLE_HOST_KEY_CHECKING" in run.output
    assert "check_host_keys" not in run.output
