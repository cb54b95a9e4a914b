# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Any installed become plugin as a persistent interpreter: the multiplexer's side (private).

Owns: ``BecomeService``, the multiplexer's service that keeps each plugin instance and
answers the hop that starts the interpreter (the core's ``_become_plugin`` says how
the two talk, and why). The worker's side, the spec, is ``_become_any``.

How it goes:
1. The worker's spec names the plugin and carries its options (the password among
   them: a secret option, ``redacted`` in every log, and part of the stack's key as
   sudo's password is).
2. The multiplexer (forked from the strategy process: Ansible and its plugin loaders
   are loaded there) ``prepare``s that spec before the hop is started: the options
   stay here, under a random token; the hop gets the token, the plugin's name, the
   become user and the id of the context serving this service.
3. The hop asks ``build``: a new instance of the plugin (``become_loader.get`` and
   ``set_options(direct=...)``) builds its command around the hop's boot command with
   the shell plugin of the task's shell executable (``ansible_shell_executable``), as
   vanilla's connection plugins get it built; the instance is
   kept, under a session id, for the prompts. Only the context the token was made
   for may ask, and once: the token and its options are then dropped.
4. The hop sends what the child prints; ``examine`` judges it line by line as
   ``ansible.builtin.ssh``'s ``_examine_output`` does, in its order: a password prompt
   (answered once with ``become_pass``; a second one, or one without a password,
   fails), ``check_success``, ``check_incorrect_password`` ("Incorrect <name>
   password"), ``check_missing_password`` ("Missing <name> password"). A prompt with
   no password fails at once (vanilla waits for its timeout).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Dict, Optional, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import CHILDREN, Service, expose
from ansible_collections.ns.mitogen.plugins.plugin_utils._become_any import METHOD, SERVICE

# A dialogue older than this (longer than any start may take) is dropped at the next build.
_FORGOTTEN_AFTER = 3600.0
# Ansible's plugin loaders are not thread-safe: two hosts' hops loading the same plugin
# at once in the multiplexer's threads could see its module half-executed ("has no
# attribute 'BecomeModule'"). Every load here goes through this lock.
_LOADING = threading.Lock()


class _Dialogue:
    """One start through a plugin instance: what it built, what it saw, what it typed."""

    def __init__(self, plugin: Any, caller: int) -> None:
        self.plugin = plugin
        self.caller = caller
        self.rest: Dict[str, bytes] = {}
        self.sent = False
        self.started = time.monotonic()


class BecomeService(Service):
    """The plugin instances of the hops being started, and their judgement of the output."""

    name = SERVICE

    def __init__(self, context_id: int) -> None:
        self.context_id = context_id
        self._lock = threading.Lock()
        self._tokens: Dict[str, Tuple[str, Dict[str, Any], Optional[int], str]] = {}
        self._dialogues: Dict[str, _Dialogue] = {}

    def prepare(self, spec: Dict[str, Any], via: Optional[int]) -> Dict[str, Any]:
        """The transport spec for the worker's ``spec`` (any other spec: as it is)."""
        if spec.get("method") != METHOD or "options" not in spec:
            return spec
        spec = dict(spec)
        token = uuid.uuid4().hex
        with self._lock:
            self._tokens[token] = (str(spec["plugin"]), dict(spec.pop("options") or {}), via, str(spec.get("shell") or "/bin/sh"))
        spec.update(token=token, service_context=self.context_id)
        return spec

    def _plugin(self, token: str, caller: int) -> Tuple[Any, str]:
        from ansible.plugins.loader import become_loader  # the multiplexer has Ansible loaded

        with self._lock:
            entry = self._tokens.pop(token, None)  # one start per token: the password is kept no longer
        if entry is None or entry[2] not in (None, caller):
            raise ValueError("unknown become token")
        name, options, _via, shell = entry
        with _LOADING:
            plugin = become_loader.get(name)
        if plugin is None:
            raise ValueError("become plugin %r is not installed on the controller" % name)
        plugin.set_options(direct=options)
        return plugin, shell

    @expose(CHILDREN, token=str, command=str)
    def build(self, caller: int, token: str, command: str) -> Dict[str, str]:
        """The plugin's command around ``command`` (the hop's boot command), and a session id."""
        from ansible.plugins.loader import get_shell_plugin

        plugin, shell = self._plugin(token, caller)
        with _LOADING:
            shell_plugin = get_shell_plugin(executable=shell)
        built = plugin.build_become_command(command, shell_plugin)
        session = uuid.uuid4().hex
        now = time.monotonic()
        with self._lock:
            for old in [k for k, d in self._dialogues.items() if now - d.started > _FORGOTTEN_AFTER]:
                del self._dialogues[old]  # a start that died without a verdict
            self._dialogues[session] = _Dialogue(plugin, caller)
        return {"session": session, "command": str(built)}

    @expose(CHILDREN, session=str, channel=str, output=bytes)
    def examine(self, caller: int, session: str, channel: str, output: bytes) -> Dict[str, Any]:
        """What to do about ``output``, new on ``channel`` ("end": all the tool said as it exited)."""
        with self._lock:
            dialogue = self._dialogues.get(session)
        if dialogue is None or dialogue.caller != caller:
            raise ValueError("unknown become session")
        verdict = self._judge(dialogue, channel, output)
        if channel == "end" or verdict.get("success") or verdict.get("error"):
            with self._lock:
                self._dialogues.pop(session, None)
        return verdict

    def _judge(self, d: _Dialogue, channel: str, output: bytes) -> Dict[str, Any]:
        plugin = d.plugin
        data = d.rest.pop(channel, b"") + output
        lines = data.splitlines(True)
        verdict: Dict[str, Any] = {}
        for i, line in enumerate(lines):
            if plugin.prompt and plugin.check_password_prompt(line):
                password = plugin.get_option("become_pass")
                if d.sent:
                    return self._fail(plugin, "Incorrect", "a second password prompt: the password was refused")
                if not password:
                    return self._fail(plugin, "Missing", "the tool asked for a password and none was given")
                d.sent = True
                verdict["answer"] = str(password).encode("utf-8") + b"\n"
            elif plugin.success and plugin.check_success(line):
                verdict["success"] = True
            elif plugin.check_incorrect_password(line):
                return self._fail(plugin, "Incorrect", "the tool refused the password")
            elif plugin.check_missing_password(line):
                return self._fail(plugin, "Missing", "the tool needs a password and none was given")
            elif i == len(lines) - 1 and not line.endswith(b"\n") and channel != "end":
                d.rest[channel] = line  # an unfinished line: judged again with what follows
        return verdict

    @staticmethod
    def _fail(plugin: Any, which: str, why: str) -> Dict[str, Any]:
        hint = "set the become password" if which == "Missing" else "check the become password"
        return {"error": "%s %s password" % (which, plugin.name), "hint": "%s (%s)" % (hint, why)}
