# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``copy`` and ``template`` of a small file in one round trip (private).

Owns: ``copy_file``, the hook on the copy action's ``_copy_file`` (installed by
``_compat_hooks.install_copy_file_hook`` from the worker's action choice), and
``Speculation``, the state it gives the connection for that call.

Vanilla's copy stats the destination (a module run), then, by the result, runs the
``copy`` module (the file, at most ``_tmpdirs.INLINE_LIMIT``, goes with that call) or
the ``file`` module (checksums equal): two round trips. Here ansible's own
``_copy_file`` runs as always; when it sends the ``stat``, the connection first runs
``_copy_file`` twice more against a faked remote (``_compat_hooks.copy_probe``): as
if the destination were missing, and as if its checksum matched, capturing instead
of sending the call each branch would make (its module request, with the file
operations ``_tmpdirs`` folds into it); the task's pending file operations and
round-trip counts are put back after each. Then one call (``_mux.RUN_THEN``) runs
the stat, picks on the target the branch vanilla's code would take on its result
(``_followup.copy_branch``) and runs that branch's captured call. The stat's reply
goes back to the real ``_copy_file``, whose next call is answered with the follow-up's
reply if it equals what was captured.

Rules it keeps:
- A call that differs from one already run fails the task loudly (never runs twice);
  a follow-up that ran but was never asked for too. A call with nothing speculated
  for it is sent (fallback: vanilla's round trips).
- The changed branch of a file over ``SPECULATE_CONTENT_LIMIT`` is not speculated
  (the file would cross the link also when the destination is already equal).
- Not speculated: a branch whose module environment differs from the stat's (ansible-core
  templates a task's ``environment:`` once for the task; were it templated per module, a
  ``random`` value would differ), a source over ``INLINE_LIMIT`` or unreadable, ``raw``, a diff
  (which reads the destination before the copy), a temporary directory ansible made
  itself (``_tmpdirs`` declined it), a subclass of the copy action. A branch whose
  probe would send anything but one module run to the stat's interpreter (a second
  stat: ``follow`` with equal checksums; a streamed put; a command) is not
  speculated; check mode's "changed" branch sends nothing.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.utils.display import Display
from ansible.utils.hashing import checksum

from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat_hooks, _mux, _tmpdirs
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase

display = Display()

STAT_MODULES = ("ansible.modules.stat",)
#: what a captured module run is answered with (its result is thrown away)
NEUTRAL = {"rc": 0, "stdout": b'{"changed": false}', "stderr": b""}
#: the branches of ``_copy_file`` after its stat (``_followup.copy_branch`` names them)
BRANCHES = ("changed", "unchanged")
#: A file larger than this (up to ``_tmpdirs.INLINE_LIMIT``) does not go with the stat: a
#: destination already equal (a playbook's usual re-run) would have been sent it for
#: nothing - 1 MiB costs more than a round trip on a slow link. Its unchanged branch is
#: still speculated (1 round trip); changed, it goes with the copy module's call (2).
SPECULATE_CONTENT_LIMIT = 64 * 1024

Call = Tuple[str, Tuple[str, str], Tuple[Any, ...], Dict[str, Any]]


class Unspeculable(Exception):
    """A probe would send something other than one module run: that branch is not speculated."""


class Speculation:
    """One ``_copy_file`` call's speculation, held by the connection meanwhile (``on_call``)."""

    def __init__(
        self, probe: Callable[[str], None], local_checksum: str, force: bool, branches: Tuple[str, ...] = BRANCHES
    ) -> None:
        self._probe = probe  # runs _copy_file against the faked remote of a branch
        self._checksum = local_checksum
        self._force = force
        self._branches = branches  # those that may be speculated
        self._armed = True  # the first module run (the stat) is yet to come
        self.capturing: Optional[List[Call]] = None
        self._expected: Optional[Tuple[Call, Dict[str, Any], str]] = None  # call, its reply, its branch

    def on_call(self, connection: MitogenConnectionBase, stack: Any, ref: Any, args: Any, source: Any) -> Tuple[bool, Any]:
        """A call the connection is about to send: (True, its reply) if answered here, else (False, None)."""
        call: Call = (connection.stack_key(stack), ref, args, source)
        if self.capturing is not None:
            self.capturing.append(call)
            if ref != _mux.RUN_MODULE or len(self.capturing) > 1:
                raise Unspeculable("%s.%s" % ref)
            return True, dict(NEUTRAL)
        if self._expected is not None:
            reply = self._answer(call)
            return reply is not None, reply
        if not self._armed or ref != _mux.RUN_MODULE:  # the task's files for another interpreter go on
            return False, None
        self._armed = False
        if args[0].get("name") not in STAT_MODULES or args[0].get("style") is not None:
            return False, None
        return True, self._run_then(connection, stack, call)

    def _run_then(self, connection: MitogenConnectionBase, stack: Any, call: Call) -> Any:
        """The stat and the follow-up it selects, in one call; the stat's reply."""
        branches = {name: self._captured(connection, name, call) if name in self._branches else None for name in BRANCHES}
        for name, found in branches.items():
            if found is not None and found[2][0].get("env") != call[2][0].get("env"):
                display.vvv("ns.mitogen: copy's %s branch not speculated: its environment is not the stat's" % name)
                branches[name] = None  # the real run might template it anew too: not guessed
        if not any(branches.values()):
            return connection.send_call(stack, call[1], call[2], call[3])
        then: Dict[str, Any] = {"checksum": self._checksum, "force": self._force}
        sources = []
        for name, found in branches.items():
            then[name] = found[2][0] if found else None
            if found and isinstance(found[3].get("source_path"), str):
                sources.append([found[3]["source_id"], found[3]["source_path"], found[3].get("module_name")])
        reply = connection.send_call(stack, _mux.RUN_THEN, (call[2][0], then), dict(call[3], then_sources=sources))
        branch = reply.get("branch")
        found = branches.get(branch) if isinstance(branch, str) else None
        if found is not None:
            if reply.get("then_error"):
                raise AnsibleError(
                    "ns.mitogen: the %s branch of the copy failed on the target: %s" % (branch, reply["then_error"])
                )
            self._expected = (found, reply["then"], branch)
        return reply["first"]

    def _captured(self, connection: MitogenConnectionBase, branch: str, stat_call: Call) -> Optional[Call]:
        """The one call ``_copy_file`` would send next in ``branch``, or None."""
        files, trips = connection.task_files.snapshot(), dict(connection._trips)
        self.capturing = []
        try:
            self._probe(branch)
            captured = self.capturing
        except Unspeculable as exc:
            display.vvv("ns.mitogen: copy's %s branch not speculated (it would send %s)" % (branch, exc))
            captured = []
        except Exception as exc:  # whatever it is, the real run meets it: never guessed here
            display.vvv("ns.mitogen: copy's %s branch not speculated: %s" % (branch, exc))
            captured = []
        finally:
            self.capturing = None
            connection.task_files.restore(files)
            connection._trips = trips
        if len(captured) != 1 or captured[0][0] != stat_call[0] or captured[0][3].get("module_utils_dirs"):
            return None
        return captured[0]

    def _answer(self, call: Call) -> Any:
        """The follow-up's reply, for the call the real ``_copy_file`` sends after the stat."""
        expected, reply, branch = self._expected or (None, {}, "")
        self._expected = None
        if call != expected:
            raise AnsibleError(
                "ns.mitogen: the copy's %s branch ran on the target with the stat (one round trip), but the "
                "copy action then sent another call: %s; not run. Report this as an ns.mitogen bug." % (branch, _describe(call))
            )
        if reply.get("need_source"):  # it did not run: the module's source was missing there
            return None
        return reply

    def refuse(self, what: str) -> None:
        """While capturing: the probe would send ``what`` (a put, a fetch, ...), which is not speculated."""
        if self.capturing is not None:
            raise Unspeculable(what)

    def unasked(self) -> Optional[str]:
        """The branch that ran on the target but was never asked for (a bug), else None."""
        if self._expected is None or self._expected[1].get("need_source"):
            return None
        return self._expected[2]


def _describe(call: Call) -> str:
    args = call[2]
    if call[1] == _mux.RUN_MODULE and args and isinstance(args[0], dict):
        return "module %s" % args[0].get("name")
    return "%s.%s" % call[1]


def copy_file(action: Any, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Copy's ``_copy_file``, in one round trip where it can be (module docstring)."""
    connection = getattr(action, "_connection", None)
    speculation = _speculation_for(action, connection, original, args, kwargs)
    if speculation is None or connection is None:
        return original(action, *args, **kwargs)
    connection.speculation = speculation
    try:
        result = original(action, *args, **kwargs)
    finally:
        connection.speculation = None
    branch = speculation.unasked()
    if branch is not None:
        raise AnsibleError("ns.mitogen: the copy's %s branch ran on the target, but the copy action never asked for it" % branch)
    return result


def _speculation_for(action: Any, connection: Any, original: Callable[..., Any], args: Any, kwargs: Any) -> Optional[Speculation]:
    if not isinstance(connection, MitogenConnectionBase) or connection.speculation is not None:
        return None
    if not _compat_hooks.is_copy_action_class(type(action)) or _compat_hooks.copy_diff(action):
        return None
    task_args = action._task.args
    if boolean(task_args.get("raw", "no"), strict=False) or not connection.task_files.owns(connection._shell.tmpdir):
        return None
    names = ("source_full", "source_rel", "content", "content_tempfile", "dest", "task_vars", "follow")
    given = dict(zip(names, args), **kwargs)
    found = _local_checksum(action, given.get("source_full"), boolean(task_args.get("decrypt", True), strict=False))
    if found is None:
        return None
    local, size = found

    def probe(branch: str) -> None:
        stat = (
            {"exists": False, "checksum": "1"}
            if branch == "changed"
            else {"exists": True, "isdir": False, "islnk": False, "checksum": local}
        )
        _compat_hooks.copy_probe(action, original, stat, _second_stat)(*args, **kwargs)

    branches = BRANCHES if size <= SPECULATE_CONTENT_LIMIT else ("unchanged",)
    return Speculation(probe, local, boolean(task_args.get("force", "yes"), strict=False), branches)


def _second_stat() -> None:
    raise Unspeculable("a second stat")


def _local_checksum(action: Any, source: Any, decrypt: bool) -> Optional[Tuple[str, int]]:
    """The sha1 and size of the file ``_copy_file`` would send, if it can go with a call (else None)."""
    if not isinstance(source, str):
        return None
    try:
        real = action._loader.get_real_file(source, decrypt=decrypt)
    except Exception:  # the real run reports it
        return None
    try:
        size = os.path.getsize(real)
        if size > _tmpdirs.INLINE_LIMIT:
            return None
        return str(checksum(real)), size
    except OSError:
        return None
    finally:
        action._loader.cleanup_tmp_file(real)
