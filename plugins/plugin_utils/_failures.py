# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the core's errors become Ansible's (private).

Owns: the one translation, at the plugin boundary, of the core's exception tree
(``_errors``) into what Ansible makes of a task: UNREACHABLE
(``AnsibleConnectionFailure``), FAILED (``AnsibleError``, or a command's result with
an exit status), each worded as vanilla's plugins word the same fault, followed by
our diagnosis in parentheses.

Rules it keeps: a lost *login* makes the host unreachable; a lost *interpreter* on a
login that works fails the task with its exit status (vanilla's shell gives 137 for
a killed module) and the next task starts anew; sudo refusing a password fails the
task with vanilla's "Incorrect sudo password", none given with vanilla's "Missing
sudo password", each naming host, method and user; the become program itself
failing (a bad flag, a user sudo refuses, no such program) fails the task as
vanilla's module failure does, with the program's exit status and its own words in
``module_stderr`` (``BecomeToolFailed``); a result too large for a frame fails that
task only. Hints name settings a user has (``_options.ansible_hint``), and the
password prompts we answered never appear in a message.
"""

from __future__ import annotations

from typing import Tuple

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import (
    CallError,
    ConnectError,
    InterpreterLost,
    PeerProtocolError,
    StreamError,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _options, _patterns

#: vanilla's words (ansible.builtin.ssh) for the sudo failures the core diagnoses
_BECOME_WORDS = {
    "sudo password was refused": "Incorrect sudo password",
    "sudo needs a password and none was given": "Missing sudo password",
}
_PROMPT_RE = _patterns.LazyPattern(r"(?i)(password|passphrase)[^:]*:\s*$")


class InterpreterNotFound(AnsibleConnectionFailure):
    """The target has no Python where the interpreter option points (``output``: the shell's words)."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class TaskInterpreterLost(AnsibleError):
    """The interpreter running the task ended (killed, or exited) on a login that works.

    The task fails, the host stays: as vanilla's shell reports its killed module
    with exit status 137. ``status`` is the interpreter's, as a shell gives it.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.text = message
        self.status = status

    def as_result(self) -> Tuple[int, bytes, bytes]:
        """(rc, stdout, stderr) of the command that was running: never a success."""
        return self.status or 1, b"", to_bytes(self.text + "\n")


class BecomeToolFailed(TaskInterpreterLost):
    """The become program (sudo) exited before the interpreter started, not for a password.

    As vanilla runs the module under the program, its failure is the module's: a
    command or module gets ``as_result()`` (the program's exit status, nothing on
    stdout, the program's own words on stderr), from which Ansible words its module
    failure; elsewhere the message says it.
    """

    def __init__(self, message: str, status: int, output: str) -> None:
        super().__init__(message, status)
        self.output = output

    def as_result(self) -> Tuple[int, bytes, bytes]:
        return self.status or 1, b"", to_bytes(self.output)


def translate(exc: Exception, method: str, host: str = "") -> AnsibleError:
    """Ansible's error for ``exc``, an error of the core met by a request over ``method`` to ``host``."""
    if isinstance(exc, ConnectError):
        return connect_failure(exc, method, host)
    if isinstance(exc, CallError):
        if exc.type_name.endswith(("ConnectError", "SpecError")):
            return AnsibleConnectionFailure("ns.mitogen: %s" % exc.remote_message)
        if exc.type_name.endswith(("OutputTooLarge", "ResultTooLarge")):  # the message says it all
            return AnsibleError("ns.mitogen: %s (in %s)" % (exc.remote_message, exc.context))
        return AnsibleError("ns.mitogen: %s" % exc)
    if isinstance(exc, InterpreterLost):
        return TaskInterpreterLost("ns.mitogen: %s; the next task starts a new interpreter" % exc, exc.status)
    if isinstance(exc, (StreamError, PeerProtocolError)):
        return AnsibleConnectionFailure("ns.mitogen: %s" % exc)
    # ours to send, over the frame limit: this task fails, nothing else
    return AnsibleError("ns.mitogen: %s" % exc)


def connect_failure(exc: ConnectError, method: str, host: str = "") -> AnsibleError:
    """Ansible's error for an interpreter that did not start, as vanilla classes it.

    The login failing makes the host unreachable; sudo refusing the password fails
    the task (vanilla: "Incorrect sudo password"), as does a missing one; sudo
    itself failing is ``BecomeToolFailed``; a missing Python on the target is
    ``InterpreterNotFound``, which a module run turns into the shell's exit status
    127, from which Ansible words its own "module interpreter not found".
    """
    exc.hint = _options.ansible_hint(exc.hint)
    if exc.context.startswith("become:"):  # any become plugin (``_become_any``): its checks' words
        hint = "; hint: %s" % exc.hint if exc.hint else ""
        if exc.stage == "become":
            return AnsibleError("%s\n(ns.mitogen: via %s%s)" % (exc.reason, exc.context, hint))
        words = "Privilege escalation failed: %s" % (exc.output.replace("\r", "").strip() or exc.reason)
        return AnsibleError("%s\n(ns.mitogen: %s%s)" % (words, exc.reason, hint))
    if exc.context.startswith(("sudo", "su:", "doas:")):
        return _become_failure(exc, host)
    if exc.stage == "spawn" and exc.reason.startswith("Python interpreter "):
        return InterpreterNotFound(unreachable_message(exc, method), output=exc.output)
    return AnsibleConnectionFailure(unreachable_message(exc, method))


def _become_failure(exc: ConnectError, host: str) -> AnsibleError:
    """A sudo, su or doas hop that did not start: a password fault, the program's own failure, or ours."""
    # e.g. "sudo:root via ssh:deploy@web1": method, user, login and host
    where = exc.context if not host or host in exc.context else "%s on %s" % (exc.context, host)
    diagnosis = "(ns.mitogen: %s, for %s%s)" % (exc.reason, where, "; hint: %s" % exc.hint if exc.hint else "")
    # sudo's reasons map to vanilla's words; su and doas (``_become_methods``) give them as their reason
    words = _BECOME_WORDS.get(exc.reason) or (exc.reason if exc.reason.startswith(("Incorrect ", "Missing ")) else None)
    if words:
        return AnsibleError("%s\n%s" % (words, diagnosis))
    output = exc.output.replace("\r", "").strip()
    if exc.stage == "spawn" and exc.returncode is not None and not exc.reason.startswith("Python interpreter "):
        text = output or exc.reason
        return BecomeToolFailed("Privilege escalation failed: %s\n%s" % (text, diagnosis), exc.returncode, text + "\n")
    return AnsibleError("Privilege escalation failed: %s\n%s" % (output or exc.reason, diagnosis))


def unreachable_message(exc: ConnectError, method: str) -> str:
    """Vanilla's words first (the program's own error), then our diagnosis.

    Except when the connection worked and the interpreter did not (too old, none
    found): vanilla has no words for that, and ours name the interpreter.
    """
    exc.hint = _options.ansible_hint(exc.hint)
    hint = "; hint: %s" % exc.hint if exc.hint else ""
    if exc.stage == "interpreter":
        return "ns.mitogen cannot run Python on the target: %s%s" % (exc.reason, hint)
    # the password prompts we answered are our dialogue with ssh, not its error
    lines = exc.output.replace("\r", "").splitlines()
    output = "\n".join(line for line in lines if not _PROMPT_RE.search(line)).strip()
    text = "Failed to connect to the host via %s: %s" % (method, output or exc.reason)
    return "%s\n(ns.mitogen: %s%s)" % (text, exc.reason, hint)
