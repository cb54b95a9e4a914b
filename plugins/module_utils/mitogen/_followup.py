# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module run, then the follow-up its result selects, in one call (private).

Owns: ``run_then(request, then)``, the call target behind a one-round-trip
``copy``/``template`` (the controller's ``_speculation``): it runs ``request`` (the
``stat`` of the destination) exactly as ``_runner.run_module`` runs any module, reads
its result, picks the branch ansible-core's copy action would take on it
(``copy_branch``), and runs that branch's request (the ``copy`` module, or ``file``
when the checksums match) the same way; each run is isolated as any other (the
state it changed is put back before the next starts). The reply is ``{"first":
stat's reply, "branch": name, "then": the follow-up's reply}``; without ``branch``
when none was run.

``then``: ``{"checksum": the source's sha1, "force": bool, "changed": request or
None, "unchanged": request or None}``. ``then_sources``: module sources, by sha1,
that the follow-ups may need (the mux attaches those the target was never sent);
each is cached here, run or not. Nothing runs after a ``stat`` whose result is not
plain JSON, failed, asks for its source, or retires the interpreter: the controller
then sends what it needs itself. A follow-up that raises is reported
(``then_error``), never retried here.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from . import _runner, _sources
from ._calls import AfterReply


def copy_branch(reply: Any, then: Dict[str, Any]) -> Optional[str]:
    """``"changed"``, ``"unchanged"``, or None: what ansible-core's ``_copy_file`` does next
    after the ``stat`` reply ``reply``.

    Its ``_execute_remote_stat`` post-processing (missing: checksum ``"1"``; no checksum:
    ``""``), then ``_copy_file``'s: a directory, or an existing file without ``force``,
    selects nothing (ansible stats again, or stops); a checksum other than the
    source's selects ``changed``, else ``unchanged``.
    """
    if not isinstance(reply, dict) or reply.get("need_source") or reply.get("retire") or "stdout" not in reply:
        return None
    try:
        result = json.loads(reply["stdout"])
    except (TypeError, ValueError):
        return None
    stat = result.get("stat") if isinstance(result, dict) and not result.get("failed") else None
    if not isinstance(stat, dict) or "exists" not in stat:
        return None
    exists = bool(stat["exists"])
    checksum = stat.get("checksum", "") if exists else "1"
    if not isinstance(checksum, str):
        return None  # ansible raises "Invalid checksum returned by stat"
    if exists and (stat.get("isdir") is not False or not then.get("force")):
        return None
    return "changed" if checksum != then.get("checksum") else "unchanged"


def run_then(
    request: Any,
    then: Any,
    source: Optional[bytes] = None,
    fetch_source: bool = False,
    then_sources: Optional[Dict[str, bytes]] = None,
) -> Any:
    """Run ``request``, then the branch of ``then`` its result selects (module docstring)."""
    if not isinstance(then, dict):
        raise ValueError("run_then: then must be a dict")
    for data in (then_sources or {}).values():
        if isinstance(data, bytes):
            _sources.source_for({"source": data})  # type: ignore[typeddict-item]
    first = _settled(_runner.run_module(request, source, fetch_source))
    branch = copy_branch(first, then)
    follow = then.get(branch) if branch else None
    if not isinstance(follow, dict):
        return {"first": first}
    try:
        second = _runner.run_module(follow, None, fetch_source)
    except Exception as exc:  # nothing else may be lost: the stat's reply goes back
        return {"first": first, "branch": branch, "then_error": "%s: %s" % (type(exc).__name__, exc)}
    if isinstance(second, AfterReply):
        return AfterReply({"first": first, "branch": branch, "then": second.value}, second.then)
    return {"first": first, "branch": branch, "then": second}


def _settled(reply: Any) -> Any:
    """A run's reply, with the state it changed put back now (before the next run)."""
    if isinstance(reply, AfterReply):
        reply.then()
        return reply.value
    return reply
