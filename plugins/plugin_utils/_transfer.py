# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection's file transfers: ``put_file``, ``fetch_file``, ``fetch_if_changed`` (private).

Owns: what ``MitogenConnectionBase``'s transfer methods do once Ansible's own checks
ran: a small put rides with the task's next call (``_tmpdirs``), a larger one, a fetch
and ns.mitogen.fetch's stat-and-fetch stream through the multiplexer in one round trip
each (counted, ``_roundtrips``), reporting their progress at -v (``_progress``).
Loaded by the first task that transfers a file (``plugin_utils.lazy``): under a
built-in strategy every worker imports our connection afresh, and most tasks transfer
nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional

from ansible.errors import AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins.plugin_utils import _progress

if TYPE_CHECKING:
    from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase

display = Display()


def put_file(conn: "MitogenConnectionBase", in_path: str, out_path: str) -> None:
    """Put ``in_path`` at ``out_path``: with the task's next call if it is small, else streamed now."""
    if not conn.capturing():
        display.vvv("ns.mitogen PUT %s TO %s" % (in_path, out_path), host=conn.host_name())
    if not os.path.exists(to_bytes(in_path)):
        raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
    key = conn.task_files.put(to_text(in_path), to_text(out_path))
    if key == "":
        if not conn.capturing():
            display.vvv("ns.mitogen: %s goes with the next call" % out_path, host=conn.host_name())
        return
    stack = conn.task_files.stacks[key] if key else conn._stack(False)
    conn._send_waiting(None)  # the directory must exist before the stream
    cache = conn.get_option("hop_cache_size") if conn.has_option("hop_cache_size") else None
    conn._count_trip(stack)
    conn._request(
        "push_file",
        context_id=conn._context_of(stack),
        local_path=to_text(in_path),
        remote_path=to_text(out_path),
        cache_size=None if cache is None else max(0, int(cache)) << 20,
        **progress(conn, "PUT %s" % out_path),
    )


def fetch_file(conn: "MitogenConnectionBase", in_path: str, out_path: str, sudoable: bool) -> None:
    """Stream ``in_path`` to ``out_path`` from the login interpreter, or the become one if ``sudoable``
    (ansible's fetch action: see ``_fetch``)."""
    _fetch(conn, "fetch_file", in_path, out_path, sudoable)


def fetch_if_changed(conn: "MitogenConnectionBase", in_path: str, out_path: str, unless_sha1: Optional[str]) -> Dict[str, Any]:
    """ns.mitogen.fetch's one round trip, in the interpreter the task's commands run in.

    Stats ``in_path`` there and streams it to ``out_path`` unless it is missing, a
    directory, unreadable, or its SHA-1 is ``unless_sha1``; returns what the target
    found (``_files.push_if_changed``'s keys).
    """
    return dict(_fetch(conn, "fetch_if_changed", in_path, out_path, True, unless_sha1=unless_sha1))


def _fetch(conn: "MitogenConnectionBase", method: str, in_path: str, out_path: str, sudoable: bool, **extra: Any) -> Any:
    """The mux's ``method`` streaming ``in_path`` to ``out_path``: one round trip, said at -vvv."""
    conn._send_waiting(None)
    context_id = conn._context(sudoable)
    display.vvv(
        "ns.mitogen FETCH %s TO %s%s" % (in_path, out_path, " (as the task's become user)" if conn._becomes(sudoable) else ""),
        host=conn.host_name(),
    )
    conn._count_trip(conn._stack(sudoable))
    return conn._request(
        method,
        context_id=context_id,
        remote_path=to_text(in_path),
        local_path=to_text(out_path),
        **extra,
        **progress(conn, "FETCH %s" % in_path),
    )


def progress(conn: "MitogenConnectionBase", what: str) -> Dict[str, Any]:
    """At -v, what a put or fetch needs to report its progress (``_progress``): a line every few seconds."""
    if display.verbosity < 1:
        return {}
    host = conn.host_name()
    return {
        "on_progress": lambda report: display.v("ns.mitogen %s" % _progress.line(what, report), host=host),
        "progress_interval": _progress.interval(),
    }
