# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command lines and prompts of each way to start a child (private module).

Owns: ``Transport``, the base of every way to start a child: a small class that turns
a spec (a plain dict, so it can cross the wire to an intermediary) into an argv,
answers the password prompts the program shows, and explains its failures in plain
words; ``local`` and ``ssh`` here, the become tools in ``_become_methods`` and
``_become_plugin``, all named in ``_methods``. No I/O happens here; ``_bootstrap``
drives the process.

Rules it keeps:
- Nothing ever waits on a question it cannot answer: ssh runs with ``BatchMode``
  unless a password was given, with ``StrictHostKeyChecking`` set explicitly, and
  one password attempt; a become tool's prompt with no password to give fails. The
  caller's own ssh options come first on the command line and so win over these
  (OpenSSH keeps the first value of an option): see ``Ssh``.
- A wrong password fails at the first sign of it ("Sorry, try again", a second
  prompt), not at a timeout.
- Specs are validated: unknown keys and wrong types are refused with a clear error.
"""

from __future__ import annotations

import re
import shlex
import signal
from typing import Any, Dict, List, Optional, Tuple

from ._errors import ConnectError
from ._wire import CORE_MIN_PYTHON

SUDO_PROMPT = "ns.mitogen sudo password:"

# Interpreters tried, in order, when none is named: the first that exists *and runs*
# wins (a broken shim on PATH is skipped), all in the one shell the transport starts.
DISCOVERY_CANDIDATES = (
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3.9",
    "python3.8",
    "/usr/bin/python3",
    "python3",
)
# The oldest Python the core runs on: ``_wire``'s (a caller may want a newer one,
# ``python_min``: discovery then skips older candidates, and refusals name what the
# caller wants).

# The first candidate that exists *and* runs as the wanted Python (one shell, no round
# trip per candidate); a broken or too-old one is skipped, never chosen.
_DISCOVER = (
    'for p in "$@"; do command -v "$p" >/dev/null 2>&1 && '
    '"$p" -c "import sys; sys.exit(sys.version_info < (3, MINOR))" >/dev/null 2>&1 && RUN; done; '
    'echo "NSM-ERR found no Python 3.MINOR or newer that runs (tried: $*)"; exit 127'
)
# How the shell runs the interpreter it found: in its place, or (``Transport.
# reports_status``) as its child, exiting with its status (128 + N for signal N).
_EXEC = 'exec "$p" -c "$0"'
_WAIT = '{ "$p" -c "$0"; exit $?; }'
# Runs its arguments and exits with their status: the shell stays their parent.
_WAIT_ARGV = '"$@"; exit $?'


class SpecError(ValueError):
    """A connection spec has an unknown option or a value of the wrong type."""


# Options whose values are secrets (passwords, passphrases, PINs, inline keys): never
# in a log line or an error message, whatever the transport.
# (Compiled by ``re``'s own cache on first use: an Ansible worker imports this module
# for every task, and redacts only what it logs or reports.)
_SECRET_OPTION = r"(?:^|_)(?:password|passphrase|pass|secret|token|pin|private_key)$"
REDACTED = "********"


def is_secret(option: str) -> bool:
    """Whether a spec option named ``option`` holds a secret."""
    return bool(re.search(_SECRET_OPTION, option))


def redacted(value: Any) -> Any:
    """``value`` (a spec, a stack of specs, or anything holding them) safe to log.

    Every dict value under a secret option's name is replaced by ``REDACTED``;
    the structure and every other value are kept, so a log still shows what was asked.
    """
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret(k) and v else redacted(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


class Transport:
    """Base: ``argv()``, ``on_text()`` and ``explain()`` for one spec."""

    method = ""
    # key -> (types, default)
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "python": ((str, list), None),
        # Without "python": discovery over these (else DISCOVERY_CANDIDATES, or the
        # caller's default interpreter for hops on the same machine).
        "python_candidates": ((list, type(None)), None),
        # "3.N": the oldest Python the caller's work runs on (default: the core's own).
        # Discovery skips older candidates and refusals name it; a named interpreter
        # the core can run still starts (the caller's own check then speaks, as
        # ansible-core's does for a 3.8 target under 2.20).
        "python_min": ((str, type(None)), None),
        "connect_timeout": ((int, float), 60.0),
        "name": ((str, type(None)), None),
    }
    use_pty = False  # prompts arrive on a controlling terminal
    # The program started is not the interpreter's parent (ssh: sshd is): a shell
    # there waits for the interpreter and exits with its status, which the program
    # (ssh) then exits with, so a killed interpreter is told from a lost login.
    reports_status = False
    password_on_stdin = False  # the password is typed on stdin, before the payload
    compress = False  # zlib on the framed stream (worth it only across a network)
    keep_login_output = False  # what the program printed while starting goes back with the hello
    # The child runs on this machine, beside this process: without a named Python or
    # candidates, it runs this process's own interpreter (False: ssh, containers).
    on_this_machine = True
    # The stream to the child never crosses a network (a pipe to a program here):
    # bundles to it may carry compiled code beside the source (``_bytecode``), ~2.8x
    # the bytes, which a slow link would pay for more than the child's compiling.
    # False unless a transport is sure (an engine's may be remote: DOCKER_HOST).
    local_link = False

    def retry_pauses(self) -> List[int]:
        """Seconds to wait before each further attempt to start (none by default)."""
        return []

    def should_retry(self, exc: ConnectError) -> bool:
        """Whether a start that failed with ``exc`` is tried again (see ``retry_pauses``)."""
        return False

    def start_budget(self) -> float:
        """The longest a start may take: every attempt's connect timeout, the pauses between,
        and the boot's own connect timeout after the login (``_bootstrap.connect``)."""
        pauses = self.retry_pauses()
        return float(self.spec["connect_timeout"]) * (len(pauses) + 2) + sum(pauses)

    def __init__(self, spec: Dict[str, Any]) -> None:
        allowed = dict(Transport.options)
        allowed.update(self.options)
        unknown = sorted(set(spec) - set(allowed) - {"method"})
        if unknown:
            raise SpecError("%s: unknown option(s) %s" % (self.method, ", ".join(unknown)))
        self.spec: Dict[str, Any] = {}
        for key, (types, default) in allowed.items():
            value = spec.get(key, default)
            if value is not None and not isinstance(value, types):
                shown = "a secret of type %s" % type(value).__name__ if is_secret(key) else repr(value)
                raise SpecError(
                    "%s: option %r must be %s, not %s" % (self.method, key, "/".join(t.__name__ for t in types), shown)
                )
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise SpecError("%s: option %r must be a list of strings" % (self.method, key))
            self.spec[key] = value
        if isinstance(self.spec["connect_timeout"], bool) or self.spec["connect_timeout"] <= 0:
            raise SpecError(
                "%s: option 'connect_timeout' must be a positive number of seconds, not %r"
                % (self.method, self.spec["connect_timeout"])
            )
        self.python_min = self._python_min(self.spec["python_min"])
        self.prompts_answered = 0
        self._answered_at: Dict[str, int] = {}

    def _python_min(self, text: Optional[str]) -> Tuple[int, int]:
        if text is None:
            return CORE_MIN_PYTHON
        match = re.fullmatch(r"3\.(\d+)", text)
        if match is None or (3, int(match.group(1))) < CORE_MIN_PYTHON:
            raise SpecError(
                "%s: option 'python_min' must be a Python version from %d.%d on, such as '3.9', not %r"
                % ((self.method,) + CORE_MIN_PYTHON + (text,))
            )
        return (3, int(match.group(1)))

    def python_min_text(self) -> str:
        return "%d.%d" % self.python_min

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, self.describe())

    def python_argv(self, default: str) -> List[str]:
        python = self.spec.get("python") or default
        return shlex.split(python) if isinstance(python, str) else list(python)

    def boot_argv(self, first_stage: str, default_python: str) -> List[str]:
        """The command that runs ``first_stage``: a named Python, else discovery.

        ``default_python`` (the caller's own interpreter, for hops on its machine)
        is used only when neither a Python nor candidates are named.
        """
        candidates = self.spec.get("python_candidates")
        if self.spec.get("python") or (default_python and not candidates):
            argv = self.python_argv(default_python) + ["-c", first_stage]
            # $0 is the shell's own name: a missing interpreter is worded as vanilla's /bin/sh words it
            return ["/bin/sh", "-c", _WAIT_ARGV, "/bin/sh"] + argv if self.reports_status else argv
        discover = _DISCOVER.replace("MINOR", str(self.python_min[1])).replace("RUN", _WAIT if self.reports_status else _EXEC)
        return ["/bin/sh", "-c", discover, first_stage, *(candidates or DISCOVERY_CANDIDATES)]

    def describe(self) -> str:
        return self.spec.get("name") or self.method

    def argv(self, boot: List[str]) -> List[str]:
        raise NotImplementedError

    def password_bytes(self) -> Optional[bytes]:
        password = self.spec.get("password")
        return None if password is None else password.encode("utf-8") + b"\n"

    def on_text(self, channel: str, text: str) -> Optional[bytes]:
        """React to output seen so far on ``channel`` ("stderr" or "tty").

        Only the text after the last prompt answered on that channel is examined.
        Returns bytes to type (a password), or None; raises ``ConnectError``.
        """
        start = self._answered_at.get(channel, 0)
        answer = self.on_new_text(channel, text[start:])
        if answer is not None:
            self._answered_at[channel] = len(text)
            self.prompts_answered += 1
        return answer

    def on_new_text(self, channel: str, text: str) -> Optional[bytes]:
        """``on_text`` for the unanswered part of the output (override this)."""
        return None

    def explain_spawn(self, program: str, exc: OSError) -> Tuple[str, str]:
        """(reason, hint) when ``program`` could not be run at all (missing, not executable)."""
        return ("cannot run %s: %s" % (program, exc.strerror or exc), "")

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        """(reason, hint) for a child that exited before it started."""
        python = " ".join(self.python_argv("python3"))
        if returncode in (126, 127) or re.search(r"(not found|No such file or directory)", output):
            return (
                "Python interpreter %r was not found or cannot run there" % python,
                "set the python interpreter to one that exists on the target",
            )
        return ("the command exited with status %s before the interpreter started" % returncode, "")

    def explain_loss(
        self, returncode: Optional[int], words: List[str], pid: Optional[int], argv: List[str]
    ) -> Tuple[str, Optional[int]]:
        """(cause, status) for a started child whose stream ended without our asking.

        ``returncode`` is the program's (``Popen``'s; None: it still runs), ``words``
        its last lines on stderr, ``pid`` the interpreter's, ``argv`` the program's.
        ``status`` is the interpreter's exit status as a shell gives it when only the
        interpreter ended and the way to it still works; None when the way was lost.
        Here the program is the interpreter, or mirrors its end (sudo kills itself
        with the signal that killed its command).
        """
        what = "the interpreter" + (" (pid %d)" % pid if pid else "")
        if returncode is None:
            return "%s closed its end of the stream, its process still running" % what, None
        status = shell_status(returncode)
        said = "; it said: %s" % " / ".join(words) if words else ""
        return describe_end(what, status) + said, status


def shell_status(returncode: int) -> int:
    """A ``Popen`` return code as a shell reports it (128 + N when signal N killed it)."""
    return 128 - returncode if returncode < 0 else returncode


def describe_end(what: str, status: int) -> str:
    """How ``what`` ended, in words, from a shell's exit ``status``."""
    if 128 < status < 128 + 65:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = "signal"
        return "%s was killed by %s (signal %d)" % (what, name, status - 128)
    return "%s exited with status %d" % (what, status)


def option_value(argv: List[str], name: str) -> Optional[str]:
    """The value ssh uses for ``-o name=...`` in ``argv``: the first one given."""
    wanted = name.lower()
    i = 0
    while i < len(argv) and argv[i] != "--":
        arg = argv[i]
        text = ""
        if arg == "-o" and i + 1 < len(argv):
            text, i = argv[i + 1], i + 1
        elif arg.startswith("-o"):
            text = arg[2:]
        parts = re.split(r"\s*=\s*|\s+", text.strip(), maxsplit=1)
        if len(parts) == 2 and parts[0].lower() == wanted:
            return parts[1]
        i += 1
    return None


class Local(Transport):
    local_link = True
    method = "local"
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {}

    def argv(self, boot: List[str]) -> List[str]:
        return boot


class Ssh(Transport):
    """``ssh``, with its command line in the order ``ansible.builtin.ssh`` builds it.

    OpenSSH keeps the first value it sees of an option, so the order decides who
    wins: ``ssh_args`` come first (before anything of ours), then what the
    built-in plugin sets itself (``StrictHostKeyChecking=no``, ``Port``, the
    identity, its authentication limits, ``User``, ``ConnectTimeout``), then
    ``extra_args`` (Ansible's ``ssh_common_args`` and ``ssh_extra_args``), and only
    then the options ns.mitogen adds (``StrictHostKeyChecking=yes``, ``BatchMode``,
    keepalives): a user's own value of any of those wins.
    """

    method = "ssh"
    reports_status = True
    on_this_machine = False
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "hostname": ((str,), None),
        "port": ((int, type(None)), None),
        "username": ((str, type(None)), None),
        "password": ((str, type(None)), None),
        # answered with the password too (e.g. "Enter PIN for"), besides ssh's prompts
        "password_prompt": ((str, type(None)), None),
        "identity_file": ((str, type(None)), None),
        # IdentitiesOnly=yes with identity_file (ansible.builtin.ssh sets it only for
        # a key it loaded into an agent: the plugin passes False for a key file)
        "identities_only": ((bool,), True),
        "ssh_path": ((str,), "ssh"),
        # first on the command line (Ansible's ssh_args)
        "ssh_args": ((list,), []),
        # after the login options (Ansible's ssh_common_args + ssh_extra_args)
        "extra_args": ((list,), []),
        "check_host_keys": ((str,), "enforce"),
        "known_hosts_file": ((str, type(None)), None),
        # A silent network cut is noticed only by keepalives: after about
        # interval * (count + 1) seconds. ssh also applies interval * count as its
        # timeout while authenticating, so short values break slow logins.
        "keepalive_interval": ((int, float), 10),
        "keepalive_count": ((int,), 3),
        # Our own stream compression (ssh's -C is never used beside it).
        "compression": ((bool,), True),
        # ssh -v, -vv, ...: its debug lines come back with the hello (``login_output``)
        "verbosity": ((int,), 0),
        # a PKCS#11 library; the password is then the token's PIN
        "pkcs11_provider": ((str, type(None)), None),
        # more logins after one that ssh itself failed (exit status 255), with
        # ansible.builtin.ssh's pauses (0, 1, 3, 7, ... up to 30 s)
        "connect_retries": ((int,), 0),
    }
    _NUMBERS = (("keepalive_interval", 1), ("keepalive_count", 1), ("verbosity", 0), ("connect_retries", 0), ("port", 1))

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec.get("hostname"):
            raise SpecError("ssh: option 'hostname' is required")
        if self.spec["check_host_keys"] not in ("enforce", "accept-new", "ignore"):
            raise SpecError(
                "ssh: check_host_keys must be 'enforce', 'accept-new' or 'ignore', not %r" % self.spec["check_host_keys"]
            )
        for key, least in self._NUMBERS:
            value = self.spec[key]
            if value is not None and (isinstance(value, bool) or value < least):
                raise SpecError("ssh: option %r must be a number from %d on, not %r" % (key, least, value))
        self.use_pty = self.spec.get("password") is not None
        self.compress = bool(self.spec["compression"])
        self.keep_login_output = self.spec["verbosity"] > 0

    def retry_pauses(self) -> List[int]:
        """Seconds to wait before each further login (ansible.builtin.ssh's backoff)."""
        return [min(2**attempt - 1, 30) for attempt in range(self.spec["connect_retries"])]

    def should_retry(self, exc: ConnectError) -> bool:
        """Whether a failed login is tried again: ssh itself failed (status 255), as vanilla retries.

        Never after a password was typed: a refused one tried again could lock the
        account (vanilla's sshpass path stops there too).
        """
        return exc.stage == "spawn" and exc.returncode == 255 and not self.prompts_answered

    def describe(self) -> str:
        if self.spec.get("name"):
            return str(self.spec["name"])
        user = self.spec.get("username")
        port = self.spec.get("port")
        return "ssh:%s%s%s" % ("%s@" % user if user else "", self.spec["hostname"], ":%d" % port if port else "")

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        argv = [s["ssh_path"]]
        password = s.get("password") is not None
        if s.get("pkcs11_provider"):
            argv += ["-o", "KbdInteractiveAuthentication=no", "-o", "PreferredAuthentications=publickey"]
            argv += ["-o", "PasswordAuthentication=no", "-o", "PKCS11Provider=%s" % s["pkcs11_provider"]]
        if s["verbosity"] > 0:
            argv.append("-" + "v" * s["verbosity"])
        argv += list(s["ssh_args"])
        if s["check_host_keys"] == "ignore":
            argv += ["-o", "StrictHostKeyChecking=no"]
        if s.get("port"):
            argv += ["-o", "Port=%d" % s["port"]]
        if s.get("identity_file"):
            if s["identities_only"]:
                argv += ["-o", "IdentitiesOnly=yes"]
            argv += ["-o", 'IdentityFile="%s"' % s["identity_file"]]
        if not password:
            argv += ["-o", "KbdInteractiveAuthentication=no"]
            argv += ["-o", "PreferredAuthentications=gssapi-with-mic,gssapi-keyex,hostbased,publickey"]
            argv += ["-o", "PasswordAuthentication=no"]
        if s.get("username"):
            argv += ["-o", 'User="%s"' % s["username"]]
        argv += ["-o", "ConnectTimeout=%d" % max(1, int(s["connect_timeout"]))]
        argv += list(s["extra_args"])
        if password:
            argv += ["-o", "NumberOfPasswordPrompts=1"]
        # ours: after every option of the user's, so that theirs win
        strict = {"enforce": "yes", "accept-new": "accept-new", "ignore": "no"}[s["check_host_keys"]]
        if strict != "no":
            argv += ["-o", "StrictHostKeyChecking=%s" % strict]
        if s.get("known_hosts_file"):
            argv += ["-o", "UserKnownHostsFile=%s" % s["known_hosts_file"]]
        elif strict == "no":
            argv += ["-o", "UserKnownHostsFile=/dev/null"]
        argv += ["-o", "BatchMode=%s" % ("no" if password else "yes")]
        argv += ["-o", "ServerAliveInterval=%s" % s["keepalive_interval"], "-o", "ServerAliveCountMax=%d" % s["keepalive_count"]]
        argv += ["--", s["hostname"], " ".join(shlex.quote(a) for a in boot)]
        return argv

    def on_new_text(self, channel: str, text: str) -> Optional[bytes]:
        if channel != "tty":
            return None
        tail = text.rstrip().lower()
        if "(yes/no" in tail:
            raise ConnectError(
                self.describe(),
                "ssh asked whether to trust an unknown host key",
                "authenticate",
                text,
                "add the host key to known_hosts, or turn host key checking off",
            )
        custom = (self.spec.get("password_prompt") or "").lower()
        if (
            tail.endswith(("password:", "passphrase for key"))
            or "password for" in tail[-80:]
            or (custom and custom in tail[-200:])
        ):
            if self.prompts_answered:
                raise ConnectError(
                    self.describe(), "ssh password was refused", "authenticate", text, "check the password for this user"
                )
            self.prompts_answered += 1
            return self.password_bytes()
        return None

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        checks = [
            (
                "REMOTE HOST IDENTIFICATION HAS CHANGED",
                "the host key does not match known_hosts (possible man-in-the-middle)",
                "verify the host and update known_hosts",
            ),
            (
                "Host key verification failed",
                "the host key is unknown or does not match known_hosts",
                "add the host key to known_hosts, or turn host key checking off",
            ),
            ("Permission denied", "authentication failed", "check the username, key or password"),
            ("Could not resolve hostname", "the host name does not resolve", "check the hostname"),
            ("Connection refused", "the host refused the connection (no sshd on that port?)", "check the host and port"),
            ("No route to host", "the host is unreachable (no route)", "check the address and the network"),
            ("Network is unreachable", "the network is unreachable", "check the address and the network"),
            ("timed out", "the connection timed out", "check that the host is up and reachable"),
            ("Connection closed by", "the server closed the connection during authentication", ""),
        ]
        for needle, reason, hint in checks:
            if needle in output:
                return reason, hint
        if returncode == 255:
            return "ssh failed (exit status 255)", ""
        return super().explain(output, returncode)

    def explain_loss(
        self, returncode: Optional[int], words: List[str], pid: Optional[int], argv: List[str]
    ) -> Tuple[str, Optional[int]]:
        """ssh exits with the remote shell's status (``reports_status``): the login
        worked and the interpreter ended. 255, or a signal, is ssh's own end: the
        login is gone, and ssh's last words say why (a keepalive timeout, sshd gone).
        """
        if returncode is not None and 0 <= returncode < 255:
            return super().explain_loss(returncode, [], pid, argv)
        words = [w for w in words if not w.startswith(("Warning: Permanently added", "debug"))][-3:]
        said = " / ".join(words)
        if returncode is None:
            cause = "ssh closed the stream and is still running"
        elif returncode < 0:
            cause = describe_end("the ssh client", shell_status(returncode))
        else:
            cause = "ssh exited with status 255" + ("" if said else ", saying nothing on stderr")
        if said:
            cause += ": %s" % said
        if "not responding" in said:
            interval = option_value(argv, "ServerAliveInterval") or "?"
            count = option_value(argv, "ServerAliveCountMax") or "3"
            cause += " (no reply to %s keepalives, one every %s s: ServerAliveInterval=%s, ServerAliveCountMax=%s)" % (
                count,
                interval,
                interval,
                count,
            )
        return cause, None
