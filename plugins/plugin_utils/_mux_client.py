# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A worker's side of the multiplexer (private; see ``_mux``).

Owns: ``MuxClient``, one blocking connection to the mux per worker process, and
``connect_client()``, which starts the mux (``_mux_server.start``) when none serves
the run yet.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError, StreamError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    DEFAULT_MAX_MESSAGE,
    FrameParser,
    Message,
    check_size,
    encode,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _muxfiles
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux import socket_path, stack_key


class MuxClient:
    """A blocking client of the mux, one per worker process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.mux_pid = _muxfiles.recorded_pid(path, wait=True)  # to name it if it dies (diagnose_loss)
        self._parser = FrameParser()
        self._next = 1
        self._ready: List[Message] = []
        self.started = False  # this process started the mux (-vvv says so)

    def __repr__(self) -> str:
        return "MuxClient(%s)" % self.path

    def call(
        self,
        stack: List[Dict[str, Any]],
        ref: Tuple[str, str],
        args: Tuple[Any, ...],
        context_id: Optional[int] = None,
        source_id: Optional[str] = None,
        source_path: Optional[str] = None,
        login_hops: int = 1,
        max_interpreters: Optional[int] = None,
        pool_size: Optional[int] = None,
        module_utils_dirs: Optional[List[str]] = None,
        module_name: Optional[str] = None,
        on_note: Optional[Callable[[Dict[str, Any]], None]] = None,
        host: Optional[str] = None,
        then_sources: Optional[List[List[str]]] = None,
    ) -> Any:
        """Run ``ref`` (module, function) with ``args`` in the context for ``stack``.

        ``context_id`` if known (a ``connect`` answered it); else the mux finds or
        starts the context by the stack. For a module run, ``source_id`` and
        ``source_path`` let the mux attach the module's source where it was never
        sent (``source_path`` None: the request carries it). The stack and the
        arguments are encoded here: the mux relays them without decoding.
        ``login_hops``, ``max_interpreters`` and ``pool_size``: as for the mux's ``connect``.
        ``module_utils_dirs``: a playbook's and roles' ``module_utils/`` directories
        the mux serves ``ansible.module_utils`` from first (a module run that imports
        from them). ``module_name``: an in-process module run's import name (the mux
        sends the module_utils it imports ahead of its first run in the context).
        ``on_note``: called, before the reply, with what the mux saw of the call:
        ``{"asked": module requests the target sent across the link meanwhile,
        "sources": 1 if a module source went with it}`` (neither: not called).
        ``host``: the inventory host the call is for (where our strategy sends its next
        task's module ahead: ``send_ahead``).
        ``then_sources``: for a module run and its follow-up (``_mux.RUN_THEN``), the
        follow-ups' ``[source_id, source_path, module_name]``: attached as the run's own.
        """
        where: Dict[str, Any] = {"context_id": context_id}
        if context_id is None:
            where = {"key": stack_key(stack), "stack": encode(stack), "login_hops": login_hops}
            if max_interpreters is not None:
                where["max_interpreters"] = max_interpreters
            if pool_size is not None:
                where["pool_size"] = pool_size
        if module_utils_dirs:
            where["module_utils_dirs"] = list(module_utils_dirs)
        if module_name is not None:
            where["module_name"] = module_name
        if host is not None:
            where["host"] = host
        if then_sources:
            where["then_sources"] = [list(entry) for entry in then_sources]
        return self.request(
            "call", on_note, ref=ref, args=encode(tuple(args)), source_id=source_id, source_path=source_path, **where
        )

    def request(self, method: str, on_progress: Optional[Callable[[Any], None]] = None, **kwargs: Any) -> Any:
        """Send one request and return its decoded reply (raises the remote error).

        Raises ``ProtocolError`` (nothing sent) for a request over the frame limit.
        ``on_progress``: called with each progress report the mux sends meanwhile (a
        put or fetch: ``_progress``), which it sends to the ``progress_handle`` given it.
        """
        handle = self._next
        self._next += 1
        progress_handle = None
        if on_progress is not None:
            progress_handle = kwargs["progress_handle"] = self._next
            self._next += 1
        msg = Message.encoded((method, kwargs), handle=0, reply_to=handle)
        check_size(msg, DEFAULT_MAX_MESSAGE)  # the mux would drop this worker's stream for it
        data = msg.pack()
        try:
            self.sock.sendall(data)
            while True:
                for i, msg in enumerate(self._ready):
                    if msg.handle == handle:
                        del self._ready[i]
                        return msg.decode()
                    if msg.handle == progress_handle and on_progress is not None:
                        del self._ready[i]
                        on_progress(msg.decode())
                        break
                else:
                    data = self.sock.recv(262144)
                    if not data:
                        raise StreamError(_muxfiles.diagnose_loss(self.path, "", self.mux_pid))
                    self._ready.extend(self._parser.feed(data))
        except OSError as exc:  # it died with our request unread: reset, not end of file
            raise StreamError(_muxfiles.diagnose_loss(self.path, ": %s" % exc, self.mux_pid)) from None

    def send_only(self, method: str, **kwargs: Any) -> None:
        """Send a request that gets no reply (``send_ahead``); raises ``OSError`` if the mux is gone."""
        msg = Message.encoded((method, kwargs), handle=0, reply_to=0)
        check_size(msg, DEFAULT_MAX_MESSAGE)
        self.sock.sendall(msg.pack())

    def close(self) -> None:
        self.sock.close()


def connect_client(
    playbook_pid: int,
    paths: Union[None, List[str], Callable[[], List[str]]] = None,
    packages: Optional[Dict[str, bytes]] = None,
    index: int = 0,
) -> MuxClient:
    """A client of the mux serving ``playbook_pid``, starting the mux if needed.

    ``paths`` (collection roots, or a function giving them, called only if a mux
    must start) go on the new mux's ``sys.path``, so it can serve the module_utils
    of every installed collection; ``packages`` as for ``main()``. ``index``: which of
    the run's muxes (``_mux.mux_index``; each has a socket and a process of its own).
    """
    path = socket_path(playbook_pid, index=index)
    try:
        return MuxClient(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise
    # the server side (and all the mux runs) is loaded only by the worker that starts it
    plugin_utils.load("_mux_server").start(playbook_pid, paths() if callable(paths) else paths, packages, index)
    try:
        client = MuxClient(path)
        client.started = True
        return client
    except OSError as exc:
        raise ConnectError("ns.mitogen multiplexer", "cannot connect to %s: %s" % (path, exc)) from None
