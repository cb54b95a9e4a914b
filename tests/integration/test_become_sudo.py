"""sudo's prompts and failures on real sudo (issue 16): the core's sudo transport.

Each prompt case has its own test account with its own ``Defaults:<user>`` line
(``tests.testbed.accounts.SUDO_CASES``), so the cases never interfere. Each case
starts an interpreter as root with the right password, and fails fast ("refused",
well under the 60 s connect timeout) with a wrong one. The stand-in tests install
a sudo of another make as the sudo program: it ignores ``-p`` and asks in German,
with a non-breaking space after the colon. The Ansible side (vanilla's words and
result shapes, flags, secrets) is in ``test_become_sudo_ansible.py``.
"""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from tests.integration import remote_helpers as rh
from tests.testbed.accounts import sudo_case

pytestmark = pytest.mark.testbed

HELPERS = "tests.integration.remote_helpers"
PY = "/usr/bin/python3"
FAULT_BOUND = 10.0  # a wrong or missing password fails this fast (the timeout is 60 s)
GERMAN = ["env", "LANG=de_DE.UTF-8", "LANGUAGE=de", PY]  # a login whose sudo speaks German

# Another sudo, as a site may install one (become_exe): it ignores -p, asks on the
# terminal in German with a non-breaking space after the colon, says something other
# than "Sorry, try again" after a wrong password, asks again, and runs the command
# as the login user (it cannot really change users).
STANDIN = r"""#!/usr/bin/python3
import os, sys, termios
args = sys.argv[1:]
command = args[args.index("--") + 1:]
user = args[args.index("-u") + 1]
wanted = open(os.path.join(os.path.dirname(__file__), "standin.pw")).read()
tty = os.open("/dev/tty", os.O_RDWR)
for attempt in range(3):
    old = termios.tcgetattr(tty)
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(tty, termios.TCSANOW, new)
    os.write(tty, ("[sudo] Passwort f\u00fcr %s:\u00a0" % user).encode())
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(tty, 1)
        if not chunk:
            sys.exit(1)
        line += chunk
    termios.tcsetattr(tty, termios.TCSANOW, old)
    os.write(tty, b"\n")
    if line.rstrip(b"\r\n").decode() == wanted:
        os.execvp(command[0], command)
    os.write(2, "Falsches Passwort, bitte noch einmal.\n".encode())
sys.exit(1)
"""


@pytest.fixture
def session():
    s = api.Session(allow_imports=[HELPERS], connect_timeout=60)
    try:
        yield s
    finally:
        s.close()


def login(session, tb, user, python=PY):
    return session.ssh(
        tb["h1"].address, username=user.name, identity_file=str(tb.key), known_hosts_file=str(tb.known_hosts), python=python
    )


def _fails_fast(fn, match):
    start = time.monotonic()
    with pytest.raises(ConnectError, match=match) as info:
        fn()
    elapsed = time.monotonic() - start
    assert elapsed < FAULT_BOUND, "took %.1fs: %s" % (elapsed, info.value)
    return info.value


@pytest.mark.parametrize("case", ["pwfeedback", "requiretty", "use_pty", "log_output", "lecture", "passprompt_override"])
def test_sudo_prompt_case(session, testbed, case):
    """Right password: root; wrong: refused at once, never typed twice."""
    user = sudo_case(case)
    via = login(session, testbed, user)
    root = session.sudo(via=via, password=user.password)
    assert root.call(rh.identity)["uid"] == 0
    err = _fails_fast(lambda: session.sudo(via=via, password="wrong-" + user.password), "sudo password was refused")
    assert user.password not in str(err)
    assert via.call(rh.echo, "login fine") == "login fine"


def test_requiretty_without_password(session, testbed):
    """requiretty refuses sudo without a terminal even where no password is needed: ours has one."""
    user = sudo_case("requiretty")
    via = login(session, testbed, user)
    _fails_fast(lambda: session.sudo(via=via), "sudo needs a password and none was given")


def test_sudo_missing_password_in_german(session, testbed):
    """sudo's own words are translated: a prompt with no password to give is 'missing' all the same."""
    via = login(session, testbed, testbed.users.sudopw, python=GERMAN)
    assert "Ein Passwort ist notwendig" in via.call(rh.import_and_use, "subprocess", "getoutput", "sudo -n true")
    _fails_fast(lambda: session.sudo(via=via, python=PY), "sudo needs a password and none was given")
    _fails_fast(lambda: session.sudo(via=via, python=PY, password="wrong"), "sudo password was refused")
    root = session.sudo(via=via, python=PY, password=testbed.users.sudopw.password)
    assert root.call(rh.identity)["uid"] == 0


def _install_standin(tb, user) -> str:
    home = tb["h1"].user_home(user)
    path = home / "sudo-standin"
    path.write_text(STANDIN)
    (home / "standin.pw").write_text(user.password)
    for f in (path, home / "standin.pw"):
        os.chown(f, user.uid, user.gid)
    path.chmod(0o700)
    (home / "standin.pw").chmod(0o600)
    return "%s/sudo-standin" % user.home


def test_translated_prompt_of_another_sudo_standin(session, testbed):
    """A prompt that is not ours (German, a non-breaking space, -p ignored) is answered."""
    user = sudo_case("pwfeedback")
    path = _install_standin(testbed, user)
    via = login(session, testbed, user)
    ctx = session.sudo(via=via, password=user.password, sudo_path=path)
    assert ctx.call(rh.identity)["uid"] == user.uid  # the stand-in runs it as the login user


def test_wrong_and_missing_password_of_another_sudo_standin(session, testbed):
    """Asked again after its own words for a wrong password: refused; asked with none: missing."""
    user = sudo_case("pwfeedback")
    path = _install_standin(testbed, user)
    via = login(session, testbed, user)
    err = _fails_fast(lambda: session.sudo(via=via, password="wrong", sudo_path=path), "sudo password was refused")
    assert "Falsches Passwort" in err.output
    _fails_fast(lambda: session.sudo(via=via, sudo_path=path), "sudo needs a password and none was given")


def test_not_in_sudoers(session, testbed):
    user = sudo_case("not_in_sudoers")
    via = login(session, testbed, user)
    err = _fails_fast(lambda: session.sudo(via=via, password=user.password), "may not use sudo")
    assert "is not in the sudoers file" in err.output


def test_no_controlling_terminal_under_sudo(session, testbed):
    """sudo's private terminal is not the interpreter's: a nested sudo fails at once instead of waiting."""
    via = login(session, testbed, testbed.users.sudo)
    ctx = session.sudo(via=via, username=testbed.users.sudopw.name)
    start = time.monotonic()
    out = ctx.call(rh.import_and_use, "subprocess", "getoutput", "timeout 20 sudo -u root true </dev/null; echo rc=$?")
    assert time.monotonic() - start < 5 and out.endswith("rc=1"), out
    assert "a terminal is required" in out
