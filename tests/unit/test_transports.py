"""Transport argv building and option filtering (pure logic, no processes)."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _methods, _transports
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError


def test_ssh_never_prompts_without_a_password():
    argv = _methods.make({"method": "ssh", "hostname": "h"}).argv(["python3", "-c", "x"])
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert argv[-3:] == ["--", "h", "python3 -c x"]


def test_ssh_with_password_uses_a_pty_and_one_attempt():
    t = _methods.make({"method": "ssh", "hostname": "h", "password": "pw", "check_host_keys": "ignore"})
    argv = t.argv(["python3"])
    assert t.use_pty and "NumberOfPasswordPrompts=1" in argv and "UserKnownHostsFile=/dev/null" in argv
    assert t.on_text("tty", "u@h's password: ") == b"pw\n"
    assert t.on_text("tty", "u@h's password: \r\n") is None  # the same prompt is not answered twice
    with pytest.raises(ConnectError, match="password was refused"):
        t.on_text("tty", "u@h's password: \r\nu@h's password: ")


def test_ssh_answers_a_named_prompt_too():
    """``password_prompt`` (ansible's sshpass_prompt), e.g. a PKCS#11 token's PIN prompt."""
    spec = {"method": "ssh", "hostname": "h", "password": "1234", "password_prompt": "Enter PIN for"}
    assert _methods.make(spec).on_text("tty", "Enter PIN for 'token 1': ") == b"1234\n"
    plain = _methods.make(dict(spec, password_prompt=None))
    assert plain.on_text("tty", "Enter PIN for 'token 1': ") is None
    assert plain.on_text("tty", "u@h's password: ") == b"1234\n"


def test_sudo_password_is_typed_on_its_terminal_and_a_retry_fails_fast():
    t = _methods.make({"method": "sudo", "username": "root", "password": "pw"})
    argv = t.argv(["py"])
    assert t.use_pty and not t.password_on_stdin and "-S" not in argv and "-n" not in argv
    assert t.on_text("stderr", _transports.SUDO_PROMPT) is None  # typed on the terminal only
    assert t.on_text("tty", _transports.SUDO_PROMPT) == b"pw\n"
    with pytest.raises(ConnectError, match="sudo password was refused"):
        t.on_text("tty", _transports.SUDO_PROMPT + "\r\n" + _transports.SUDO_PROMPT)


def test_sudo_wrong_password_in_sudos_words_fails_fast():
    t = _methods.make({"method": "sudo", "password": "pw"})
    assert t.on_text("tty", "lecture...\n" + _transports.SUDO_PROMPT) == b"pw\n"
    with pytest.raises(ConnectError, match="sudo password was refused"):
        t.on_text("stderr", "Sorry, try again.\n")


def test_sudo_prompt_with_no_password_to_give_is_missing():
    """No -n: sudo's own words for it are translated; a prompt is a prompt in any language."""
    t = _methods.make({"method": "sudo"})
    assert "-n" not in t.argv(["py"])
    with pytest.raises(ConnectError, match="sudo needs a password and none was given"):
        t.on_text("tty", _transports.SUDO_PROMPT)


@pytest.mark.parametrize(
    "prompt",
    ["[sudo] Passwort f\u00fcr root:\u00a0", "Password:", "[sudo] password for deploy: ", "Mot de passe\u00a0: ", "パスワード："],
)
def test_sudo_answers_a_prompt_that_is_not_its_own(prompt):
    t = _methods.make({"method": "sudo", "password": "pw"})
    assert t.on_text("tty", "some banner\r\n" + prompt) == b"pw\n"


@pytest.mark.parametrize(
    "text",
    ["It usually boils down to these three things:", "the password you type will not be visible.\n", "****"],
)
def test_sudo_does_not_answer_what_is_not_a_prompt(text):
    assert _methods.make({"method": "sudo", "password": "pw"}).on_text("tty", text) is None


def test_discovery_when_no_python_is_named():
    t = _methods.make({"method": "ssh", "hostname": "h"})
    argv = t.boot_argv("STAGE", "")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == "STAGE" and "python3.13" in argv
    assert t.boot_argv("STAGE", "/usr/bin/python3")[-3:] == ["/usr/bin/python3", "-c", "STAGE"]
    local = _methods.make({"method": "local"})
    assert local.boot_argv("STAGE", "/usr/bin/python3") == ["/usr/bin/python3", "-c", "STAGE"]


def test_ssh_interpreter_runs_under_a_shell_that_reports_its_status():
    """sshd is the login interpreter's parent: a shell waits for it instead, and exits
    with its status (ssh then exits with it), or a killed interpreter and a lost login
    would look the same (ssh exits 255 for both, saying nothing)."""
    t = _methods.make({"method": "ssh", "hostname": "h", "python": "/usr/bin/python3 -E"})
    assert t.boot_argv("STAGE", "") == ["/bin/sh", "-c", '"$@"; exit $?', "/bin/sh", "/usr/bin/python3", "-E", "-c", "STAGE"]
    discover = _methods.make({"method": "ssh", "hostname": "h"}).boot_argv("S", "")
    assert '{ "$p" -c "$0"; exit $?; }' in discover[2] and "exec" not in discover[2]
    assert 'exec "$p" -c "$0"' in _methods.make({"method": "local"}).boot_argv("S", "")[2]


@pytest.mark.parametrize(
    ("method", "returncode", "words", "cause", "status"),
    [
        ("ssh", 137, [], "the interpreter (pid 42) was killed by SIGKILL (signal 9)", 137),
        ("ssh", 1, ["ignored"], "the interpreter (pid 42) exited with status 1", 1),
        ("ssh", 255, ["Connection to h closed by remote host."], "ssh exited with status 255: Connection to h closed", None),
        ("ssh", 255, [], "ssh exited with status 255, saying nothing on stderr", None),
        ("ssh", -15, [], "the ssh client was killed by SIGTERM (signal 15)", None),
        ("ssh", None, [], "ssh closed the stream and is still running", None),
        ("sudo", -9, [], "the interpreter (pid 42) was killed by SIGKILL (signal 9)", 137),
        ("sudo", 0, ["sudo: bye"], "the interpreter (pid 42) exited with status 0; it said: sudo: bye", 0),
        ("local", None, [], "closed its end of the stream", None),
    ],
)
def test_a_lost_childs_cause(method, returncode, words, cause, status):
    spec = {"method": method, "hostname": "h"} if method == "ssh" else {"method": method}
    text, got = _methods.make(spec).explain_loss(returncode, words, 42, [])
    assert cause in text and got == status


def test_a_keepalive_timeout_names_the_limit_ssh_used():
    """ssh keeps the first value of an option: the limit named is that one."""
    argv = ["ssh", "-oServerAliveInterval=5", "-o", "ServerAliveCountMax 4", "-o", "ServerAliveInterval=10", "--", "h", "x"]
    text, status = _methods.make({"method": "ssh", "hostname": "h"}).explain_loss(
        255, ["Timeout, server h not responding."], 42, argv
    )
    assert status is None
    assert text.endswith(
        "not responding. (no reply to 4 keepalives, one every 5 s: ServerAliveInterval=5, ServerAliveCountMax=4)"
    )
    assert _transports.option_value(["ssh", "--", "h", "-o", "ServerAliveInterval=1"], "ServerAliveInterval") is None


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"method": "ssh"}, "hostname' is required"),
        ({"method": "ssh", "hostname": "h", "check_host_keys": "maybe"}, "check_host_keys"),
        ({"method": "ssh", "hostname": "h", "ssh_args": ["-v", 3]}, "list of strings"),
        ({"method": "ssh", "hostname": "h", "compression": "yes"}, "compression"),
        ({"method": "ssh", "hostname": "h", "connect_timeout": -1}, "'connect_timeout' must be a positive number"),
        ({"method": "ssh", "hostname": "h", "connect_timeout": 0}, "connect_timeout"),
        ({"method": "ssh", "hostname": "h", "keepalive_interval": 0}, "'keepalive_interval' must be a number from 1 on"),
        ({"method": "ssh", "hostname": "h", "keepalive_count": 0}, "keepalive_count"),
        ({"method": "ssh", "hostname": "h", "verbosity": -1}, "verbosity"),
        ({"method": "ssh", "hostname": "h", "connect_retries": -2}, "connect_retries"),
        ({"method": "ssh", "hostname": "h", "port": 0}, "port"),
        ({"method": "ssh", "hostname": "h", "extra_args": "-v"}, "extra_args"),
        ({"method": "sudo", "colour": "red"}, "unknown option"),
        ({"method": "local", "python_min": "3.5"}, "'python_min' must be a Python version from 3.6 on"),
        ({"method": "local", "python_min": "2.7"}, "python_min"),
        ({"method": "local", "python_min": "3"}, "python_min"),
        ({"method": "local", "python_min": "3.9.1"}, "python_min"),
        ({"method": "local", "python_min": 3.9}, "python_min"),
        ("ssh", "must be a dict"),
    ],
)
def test_malformed_specs(spec, message):
    with pytest.raises(_transports.SpecError, match=message):
        _methods.make(spec)


def test_only_network_hops_compress_by_default():
    assert _methods.make({"method": "ssh", "hostname": "h"}).compress is True
    assert _methods.make({"method": "ssh", "hostname": "h", "compression": False}).compress is False
    assert _methods.make({"method": "sudo"}).compress is False
    assert _methods.make({"method": "local"}).compress is False


def _index(argv, option):
    """Index of ``-o option...`` (by its name) in argv; every one of them must be found."""
    hits = [i for i, a in enumerate(argv) if a.split("=", 1)[0] == option and argv[i - 1] == "-o"]
    assert hits, "%s not in %r" % (option, argv)
    return hits


def test_ssh_argv_is_in_ansible_builtin_ssh_order_and_ours_come_last():
    """OpenSSH keeps an option's first value: the user's args must come before ours.

    Regression: ours came first and silently won over a user's StrictHostKeyChecking=no,
    ServerAliveInterval, UserKnownHostsFile...
    """
    spec = {
        "method": "ssh",
        "hostname": "h",
        "port": 2222,
        "username": "u",
        "identity_file": "/k",
        "identities_only": False,
        "ssh_args": ["-o", "ServerAliveInterval=60"],
        "extra_args": ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/kh"],
        "verbosity": 2,
        "connect_timeout": 7,
    }
    argv = _methods.make(spec).argv(["python3"])
    first = argv.index("ServerAliveInterval=60")
    assert argv[1] == "-vv" and first == 3
    # vanilla's own options, in vanilla's order, between ssh_args and extra_args
    order = [_index(argv, name)[0] for name in ("Port", "IdentityFile", "PasswordAuthentication", "User", "ConnectTimeout")]
    assert first < order[0] and order == sorted(order)
    assert argv[order[0]] == "Port=2222" and argv[order[1]] == 'IdentityFile="/k"' and argv[order[3]] == 'User="u"'
    assert "IdentitiesOnly=yes" not in argv  # as vanilla for a key file
    user_strict = argv.index("StrictHostKeyChecking=no")
    assert order[-1] < user_strict < argv.index("StrictHostKeyChecking=yes")
    assert argv.index("UserKnownHostsFile=/kh") < min(_index(argv, "BatchMode") + _index(argv, "ServerAliveCountMax"))
    assert _index(argv, "ServerAliveInterval") == [first, argv.index("ServerAliveInterval=10")]
    assert argv[-3:] == ["--", "h", "python3"]


def test_ssh_pkcs11_and_password_options_as_vanilla():
    spec = {"method": "ssh", "hostname": "h", "password": "1234", "pkcs11_provider": "/lib/p11.so", "ssh_args": ["-4"]}
    argv = _methods.make(spec).argv(["py"])
    assert argv[1:9] == [
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "PKCS11Provider=/lib/p11.so",
    ]
    assert argv.index("-4") == 9 and "NumberOfPasswordPrompts=1" in argv and "BatchMode=no" in argv


def test_ssh_retries_only_what_ssh_itself_failed_with_vanillas_pauses():
    t = _methods.make({"method": "ssh", "hostname": "h", "connect_retries": 7, "connect_timeout": 10})
    assert t.retry_pauses() == [0, 1, 3, 7, 15, 30, 30]
    assert t.start_budget() == 8 * 10 + 86 + 10  # 8 attempts, their pauses, the boot after the login
    failed = ConnectError("h", "refused", "spawn")
    failed.returncode = 255
    assert t.should_retry(failed)
    failed.returncode = 1
    assert not t.should_retry(failed)
    refused = ConnectError("h", "ssh password was refused", "authenticate")
    assert not t.should_retry(refused)
    typed = _methods.make({"method": "ssh", "hostname": "h", "password": "pw", "connect_retries": 2})
    typed.on_text("tty", "u@h's password: ")
    failed.returncode = 255
    assert not typed.should_retry(failed)  # never after a password was typed
    assert _methods.make({"method": "ssh", "hostname": "h"}).retry_pauses() == []


def test_redacted_hides_every_secret_option_and_keeps_the_rest():
    stack: List[Dict[str, Any]] = [
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
        _methods.make({"method": "sudo", "username": "root", "password": 987654})
    assert "987654" not in str(info.value)
