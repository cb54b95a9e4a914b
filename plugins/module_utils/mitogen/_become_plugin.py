# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Any become plugin as a hop, driven by the plugin's own logic (private module).

Owns: ``PluginBecome``, the transport (method ``become``) that starts an interpreter
through a become plugin installed on the controller (pbrun, dzdo, ksu, machinectl,
``community.general.sudosu``, a site's own), and its dialogue with that plugin.

Design:
- The plugin's code exists only on the controller (it imports Ansible). The hop (the
  login interpreter) therefore asks the controller for everything the plugin decides:
  ``build`` (the plugin's ``build_become_command`` around our boot command, run here
  by ``/bin/sh -c`` as the login shell would run it) and ``examine`` (what the child
  printed so far, which the plugin's ``check_password_prompt``, ``check_success``,
  ``check_incorrect_password`` and ``check_missing_password`` judge, as
  ``ansible.builtin.ssh`` judges them line by line). The controller answers with
  bytes to type (the password), a failure in vanilla's words (``Incorrect X
  password``, ``Missing X password``), or nothing (keep reading).
- The controller side is a service (``SERVICE``) in the context ``service_context``
  (the multiplexer, an ancestor of this hop): a child reaches it only through
  ``CALL_SERVICE``, whose exposed methods admit descendants only. The spec names the
  plugin instance by a ``token`` the controller made; the plugin's options and the
  password never travel down, only the bytes typed when a prompt shows.
- The child runs with a private pty as its controlling terminal (tools that read the
  password from ``/dev/tty``, like sudo without ``-S``), stdin and stdout pipes (tools
  that read it from stdin, like PAM's ``su`` or ``sudo -S``): an answer to a prompt
  seen on the tty is typed on the tty, one seen on stderr or stdout on stdin. The
  payload is written only once ``NSM-READY`` shows (``password_on_stdin``).
- A tool that exits before the interpreter starts (a bad flag, a missing binary, a
  refusal) fails with its own words and exit status (stage ``become``): the task
  fails, the host stays reachable.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._errors import ConnectError
from ._transports import SpecError, Transport

SERVICE = "ns.mitogen.become"
# Where a hop may ask from: this core's service call, given by ``_bootstrap``.
Ask = Callable[[str, Dict[str, Any], float], Any]


class PluginBecome(Transport):
    """A become plugin's command around the boot command; prompts judged by the controller."""

    method = "become"
    local_link = True
    use_pty = True
    password_on_stdin = True  # the payload waits for NSM-READY: stdin first carries answers
    examines_stdout = True  # what the tool prints on stdout before NSM-READY is judged too
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "plugin": ((str,), ""),  # the plugin's name, for messages
        "username": ((str, type(None)), None),  # the become user, for messages
        "token": ((str,), ""),  # the controller's name for the plugin instance
        "service_context": ((int,), 0),  # the context serving SERVICE (an ancestor)
        "shell": ((str,), "/bin/sh"),  # runs the plugin's command (as the login shell would)
    }

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec["plugin"] or not self.spec["token"]:
            raise SpecError("become: options 'plugin' and 'token' are required")
        self.ask: Optional[Ask] = None
        self.session = ""
        self._seen: Dict[str, int] = {}
        self.succeeded = False
        self.typed: List[str] = []  # what was typed: masked in the output a failure shows

    def describe(self) -> str:
        return self.spec.get("name") or "become:%s:%s" % (self.spec["plugin"], self.spec.get("username") or "")

    def _ask(self, method: str, kwargs: Dict[str, Any]) -> Any:
        if self.ask is None:
            raise ConnectError(self.describe(), "no way to reach the controller's become service", "spawn")
        return self.ask(method, dict(kwargs), float(self.spec["connect_timeout"]))

    def argv(self, boot: List[str]) -> List[str]:
        reply = self._ask("build", {"token": self.spec["token"], "command": " ".join(shlex.quote(a) for a in boot)})
        self.session = reply["session"]
        return [self.spec["shell"], "-c", reply["command"]]

    def on_text(self, channel: str, text: str) -> Optional[bytes]:
        """Send what is new on ``channel`` to the controller; type what it answers."""
        start = self._seen.get(channel, 0)
        new = text[start:]
        if not new or self.succeeded:
            return None
        self._seen[channel] = len(text)
        verdict = self._ask("examine", {"session": self.session, "channel": channel, "output": new.encode("utf-8")})
        if verdict.get("success"):
            self.succeeded = True
        if verdict.get("error"):
            raise ConnectError(self.describe(), verdict["error"], "become", "", verdict.get("hint") or "")
        answer = verdict.get("answer")
        if answer is not None:
            self.prompts_answered += 1
            typed = answer.decode("utf-8", "replace").strip()
            if typed:
                self.typed.append(typed)
        return answer

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        """The tool's own end: its status and words (the task fails with them).

        Raises ``ConnectError`` (stage ``become``) when the plugin's checks find a
        wrong or missing password in what it said: the tool may exit before its
        words were judged on the way.
        """
        if self.session and self.ask is not None:
            try:
                verdict = self._ask("examine", {"session": self.session, "channel": "end", "output": output.encode("utf-8")})
            except Exception:  # the explanation below stands without it
                verdict = {}
            if verdict.get("error"):  # the plugin's words for what the tool said as it exited
                raise ConnectError(self.describe(), verdict["error"], "become", output, verdict.get("hint") or "")
        return (
            "the %s command exited with status %s before the interpreter started" % (self.spec["plugin"], returncode),
            "check become_exe, become_flags and the become user",
        )
