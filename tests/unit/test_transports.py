"""Transport argv building and option filtering (pure logic, no processes)."""

from __future__ import annotations

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _transports
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError


def test_ssh_never_prompts_without_a_password():
    argv = _transports.make({"method": "ssh", "hostname": "h"}).argv(["python3", "-c", "x"])
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert argv[-3:] == ["--", "h", "python3 -c x"]


def test_ssh_with_password_uses_a_pty_and_one_attempt():
    t = _transports.make({"method": "ssh", "hostname": "h", "password": "pw", "check_host_keys": "ignore"})
    argv = t.argv(["python3"])
    assert t.use_pty and "NumberOfPasswordPrompts=1" in argv and "UserKnownHostsFile=/dev/null" in argv
    assert t.on_text("tty", "u@h's password: ") == b"pw\n"
    assert t.on_text("tty", "u@h's password: \r\n") is None  # the same prompt is not answered twice
    with pytest.raises(ConnectError, match="password was refused"):
        t.on_text("tty", "u@h's password: \r\nu@h's password: ")


def test_ssh_answers_a_named_prompt_too():
    """``password_prompt`` (ansible's sshpass_prompt), e.g. a PKCS#11 token's PIN prompt."""
    spec = {"method": "ssh", "hostname": "h", "password": "1234", "password_prompt": "Enter PIN for"}
    assert _transports.make(spec).on_text("tty", "Enter PIN for 'token 1': ") == b"1234\n"
    plain = _transports.make(dict(spec, password_prompt=None))
    assert plain.on_text("tty", "Enter PIN for 'token 1': ") is None
    assert plain.on_text("tty", "u@h's password: ") == b"1234\n"


def test_sudo_password_goes_to_stdin_and_a_retry_fails_fast():
    t = _transports.make({"method": "sudo", "username": "root", "password": "pw"})
    assert t.password_on_stdin and "-S" in t.argv(["py"]) and "-n" not in t.argv(["py"])
    assert t.on_text("stderr", _transports.SUDO_PROMPT) == b"pw\n"
    with pytest.raises(ConnectError, match="sudo password was refused"):
        t.on_text("stderr", _transports.SUDO_PROMPT + "\nSorry, try again.\n")


def test_sudo_without_password_is_non_interactive():
    assert "-n" in _transports.make({"method": "sudo"}).argv(["py"])


def test_discovery_when_no_python_is_named():
    t = _transports.make({"method": "ssh", "hostname": "h"})
    argv = t.boot_argv("STAGE", "")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == "STAGE" and "python3.13" in argv
    assert t.boot_argv("STAGE", "/usr/bin/python3") == ["/usr/bin/python3", "-c", "STAGE"]


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"method": "ssh"}, "hostname' is required"),
        ({"method": "ssh", "hostname": "h", "check_host_keys": "maybe"}, "check_host_keys"),
        ({"method": "ssh", "hostname": "h", "ssh_args": ["-v", 3]}, "list of strings"),
        ({"method": "ssh", "hostname": "h", "compression": "yes"}, "compression"),
        ({"method": "sudo", "colour": "red"}, "unknown option"),
        ({"method": "local", "python_min": "3.7"}, "'python_min' must be a Python version from 3.8 on"),
        ({"method": "local", "python_min": "2.7"}, "python_min"),
        ({"method": "local", "python_min": "3"}, "python_min"),
        ({"method": "local", "python_min": "3.9.1"}, "python_min"),
        ({"method": "local", "python_min": 3.9}, "python_min"),
        ("ssh", "must be a dict"),
    ],
)
def test_malformed_specs(spec, message):
    with pytest.raises(_transports.SpecError, match=message):
        _transports.make(spec)


def test_only_network_hops_compress_by_default():
    assert _transports.make({"method": "ssh", "hostname": "h"}).compress is True
    assert _transports.make({"method": "ssh", "hostname": "h", "compression": False}).compress is False
    assert _transports.make({"method": "sudo"}).compress is False
    assert _transports.make({"method": "local"}).compress is False


def test_redacted_hides_every_secret_option_and_keeps_the_rest():
    stack = [
        {"method": "ssh", "hostname": "h", "password": "pw1", "private_key": "KEY", "private_key_passphrase": "pp"},
        {"method": "sudo", "username": "root", "password": "pw2", "password_prompt": "Password:", "python": ["py"]},
    ]
    shown = repr(_transports.redacted(stack))
    for secret in ("pw1", "KEY", "'pp'", "pw2"):
        assert secret not in shown
    assert shown.count(_transports.REDACTED) == 4
    assert "'hostname': 'h'" in shown and "'password_prompt': 'Password:'" in shown and "['py']" in shown
    assert stack[0]["password"] == "pw1"  # the caller's spec is left as it was


def test_a_secret_of_the_wrong_type_is_not_repeated_in_the_error():
    with pytest.raises(_transports.SpecError, match="option .password. must be str/NoneType, not a secret of type int") as info:
        _transports.make({"method": "sudo", "username": "root", "password": 987654})
    assert "987654" not in str(info.value)
