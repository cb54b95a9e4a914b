# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router of one context: executes routing decisions (private module).

Owns: ``Router``, which feeds every message through its ``RouteTable``
(``_routing``: the route table, handles with their policies, and the trust gate,
decided without I/O) and carries out the answer: forward over a stream (pausing
the sender while the stream is full), deliver to a handler, refuse with a reply,
drop. It also runs the calls the call pool takes (``run_call``), keeps the route
table current (``ADD_ROUTE``, ``DEL_ROUTE``, ``ALLOCATE_ID``) and propagates
disconnects. Mailboxes and calls (``Receiver``, ``Context``, ``CallPool``) are in
``_calls``.

Trust rules: see ``_routing``. Loss:
- When a stream dies, every route through it is removed, every mailbox waiting on a
  context behind it fails with a ``StreamError`` naming the context, the cause as
  far as this hop can know it (``on_stream_disconnect``) and the hop where the loss
  was seen, and the loss is reported upwards (``DEL_ROUTE``) with that error, so
  that the caller far away reads the same cause (an ``InterpreterLost`` when only
  the interpreter ended and the way to it still works).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable, List, Optional, Set

from ._broker import Broker
from ._calls import AfterReply, CallPool, Context, Receiver, dead_message, resolve_function
from ._errors import CallError, ConnectError, InterpreterLost, PeerProtocolError, ProtocolError, RefusedError, StreamError
from ._routing import Deliver, Drop, Forward, Refuse, ReplyError, RouteTable
from ._stream import Stream
from ._wire import ADD_ROUTE, ALLOCATE_ID, CALL_FUNCTION, DEL_ROUTE, FLAG_ERROR, SHUTDOWN, Message, too_large

LOG = logging.getLogger("ns.mitogen.router")

__all__ = ["Router"]


class Router:
    """Routes messages for one context (``context_id``) of the tree.

    ``parent`` is the stream towards the root (``None`` on the controller).
    """

    def __init__(self, broker: Broker, context_id: int = 0, name: str = "controller", max_message: int = 0) -> None:
        from ._wire import DEFAULT_MAX_MESSAGE

        self.broker = broker
        self.context_id = context_id
        self.name = name
        self.max_message = max_message or DEFAULT_MAX_MESSAGE
        self.table = RouteTable(context_id, name, connected=lambda stream: stream.connected)
        self.stats = self.table.stats
        self._lock = threading.Lock()
        self.pool = CallPool(self)
        self.responder: Any = None  # this context's module Responder, once made
        self.on_route_lost: List[Callable[[Set[int], str], Any]] = []
        self.table.install_builtins(
            {
                CALL_FUNCTION: self._on_call,
                SHUTDOWN: self._on_shutdown,
                ADD_ROUTE: self._on_add_route,
                DEL_ROUTE: self._on_del_route,
                ALLOCATE_ID: self._on_allocate_id,
            }
        )
        # The table's policies and look-ups, as the rest of the core uses them.
        self.from_parent = self.table.from_parent
        self.from_child_stream = self.table.from_child_stream
        self.from_descendant = self.table.from_descendant
        self.reply_policy = self.table.reply_policy
        self.add_handler = self.table.add_handler
        self.name_of = self.table.name_of
        self.route_for = self.table.route_for
        broker.on_shutdown(self._on_broker_shutdown)

    def __repr__(self) -> str:
        return "Router(%d %r, routes=%d)" % (self.context_id, self.name, len(self.table.routes))

    @property
    def parent(self) -> Optional[Stream]:
        """The stream towards the root (None on the controller)."""
        return self.table.parent  # type: ignore[no-any-return]

    @property
    def parent_id(self) -> Optional[int]:
        return self.table.parent_id

    def del_handler(self, handle: int) -> None:
        self.table.handlers.pop(handle, None)

    def context(self, context_id: int) -> Context:
        return Context(self, context_id, self.name_of(context_id))

    def allocate_id(self, timeout: float = 30.0) -> int:
        """A fresh context id, unique in the whole tree (asks the root if not it)."""
        if self.parent is None:
            with self._lock:
                return self.table.allocate()
        recv = Receiver(self, respondent=0)
        try:
            self.send(Message(dst_id=0, handle=ALLOCATE_ID, reply_to=recv.handle))
            value = recv.get(timeout).decode()
        finally:
            recv.close()
        if not isinstance(value, int):
            raise PeerProtocolError("root answered ALLOCATE_ID with %r" % (value,))
        return value

    def register_stream(self, stream: Stream, context_id: int, name: str) -> None:
        """Attach a started child stream (any thread): route ``context_id`` to it."""
        stream.remote_id = context_id

        def _register() -> None:
            self.table.attach(stream, context_id, name)
            if self.parent is not None:
                self.parent.send(
                    Message.encoded((context_id, name), dst_id=self.parent_id or 0, src_id=self.context_id, handle=ADD_ROUTE)
                )
            stream.start()

        self.broker.defer(_register)

    def make_stream(
        self, rfd: int, wfd: int, name: str, owner: Any = None, initial: bytes = b"", compress: bool = False
    ) -> Stream:
        """A stream whose messages and loss are handled by this router (``compress``: zlib both ways)."""
        return Stream(
            self.broker,
            rfd,
            wfd,
            name,
            on_message=lambda stream, msg: self._route(msg),
            on_disconnect=self.on_stream_disconnect,
            max_message=self.max_message,
            owner=owner,
            initial=initial,
            compress=compress,
        )

    def set_parent(self, stream: Stream, parent_id: int) -> None:
        stream.remote_id = parent_id
        self.table.set_parent(stream, parent_id)

    # -- sending ------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send ``msg`` from this context (any thread)."""
        msg.src_id = self.context_id
        msg.stream = None
        if self.broker.on_thread:
            self._route(msg)
            return
        stream = self.table.route_for(msg.dst_id)
        if stream is None:
            self.broker.defer(self._route, msg)
            return
        # Back-pressure for threads: count the bytes until the broker buffers them,
        # and wait while the stream is over its high-water mark.
        size = len(msg.data)
        stream.reserve(size)
        self.broker.defer(self._route_reserved, msg, stream, size)
        stream.wait_drained()

    def _route_reserved(self, msg: Message, stream: Stream, size: int) -> None:
        stream.release(size)
        self._route(msg)

    def _reply_error(self, msg: Message, exc: Exception) -> None:
        if msg.reply_to:
            err = exc if isinstance(exc, StreamError) else CallError.from_exception(exc, self.name)
            reply = Message.encoded(err, dst_id=msg.src_id, src_id=self.context_id, handle=msg.reply_to, flags=FLAG_ERROR)
            self._route(reply)

    def _refuse(self, msg: Message, why: str) -> None:
        """Tell ``msg``'s reply handle it was refused (the table counted it)."""
        LOG.warning("%r: refused %r from %s: %s", self, msg, self.name_of(msg.src_id), why)
        self._reply_error(msg, RefusedError("%s refused a message from %s: %s" % (self.name, self.name_of(msg.src_id), why)))

    def _route(self, msg: Message) -> None:
        """Deliver or forward one message (broker thread), as the table decides."""
        action = self.table.route(msg)
        if isinstance(action, Forward):
            out = action.stream
            try:
                out.send(msg)
            except ProtocolError as exc:  # over the frame limit: fail that message, keep the stream
                LOG.error("%r: %s", self, exc)
                self._reply_error(msg, exc)
                return
            if msg.stream is not None and out.full:
                msg.stream.pause(out)
        elif isinstance(action, Deliver):
            try:
                action.handler.fn(msg)
            except Exception:
                LOG.exception("%r: handler for %r failed", self, msg)
        elif isinstance(action, Refuse):
            self._refuse(msg, action.reason)
        elif isinstance(action, ReplyError):
            self._reply_error(msg, action.error)
        elif isinstance(action, Drop) and action.reason:
            LOG.warning("%r: dropped %r from %r: %s", self, msg, msg.stream, action.reason)

    # -- built-in handles ------------------------------------------------------------
    def _on_call(self, msg: Message) -> None:
        self.pool.submit(msg)

    def run_call(self, msg: Message) -> None:
        """Execute one CALL_FUNCTION message (pool thread) and send the reply.

        A value whose reply would be over the frame limit is replaced by an error
        naming its size and the limit: the caller's call fails, the stream stays.
        """
        ref: Any = None
        try:
            ref, args, kwargs = msg.decode()
            if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                raise PeerProtocolError("malformed call body")
            fn = resolve_function(ref)
            value: Any = fn(*args, **kwargs)
            flags = 0
        except BaseException as exc:  # the caller gets every failure, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            if not msg.reply_to:
                LOG.exception("%s: fire-and-forget call failed", self.name)
                return
            # A child that could not be started stays a ConnectError for the caller.
            value = exc if isinstance(exc, ConnectError) else CallError.from_exception(exc, self.name)
            flags = FLAG_ERROR
        then = None
        if isinstance(value, AfterReply):
            value, then = value.value, self.pool.after_reply(value.then)
        try:
            if msg.reply_to:
                reply = self._reply_to_call(msg, ref, value, flags)
                value = None  # its encoded copy is enough: a large result is held once, not twice
                self.send(reply)
                if then is not None:
                    # Let the broker write it before the work takes the GIL (the
                    # broker would wait for it: ~0.5 ms on every module run's reply).
                    written = threading.Event()
                    self.broker.defer(written.set)
                    written.wait(1.0)
        finally:
            if then is not None:
                then()

    def _reply_to_call(self, msg: Message, ref: Any, value: Any, flags: int) -> Message:
        """The reply carrying ``value``; an error reply if it cannot be encoded or sent."""
        try:
            reply = Message.encoded(value, dst_id=msg.src_id, handle=msg.reply_to, flags=flags)
        except Exception as exc:
            err = CallError.from_exception(exc, self.name)
        else:
            if len(reply.data) <= self.max_message:
                return reply
            name = "%s.%s" % ref if isinstance(ref, tuple) and len(ref) == 2 else "a call"
            err = CallError(
                "ResultTooLarge",
                "%s; the call failed, the connection stays usable. Return less: for a large result, write it "
                "to a file on the target and fetch that file"
                % too_large("the result of %s" % name, len(reply.data), self.max_message),
                "",
                self.name,
            )
            LOG.error("%r: %s", self, err)
        return Message.encoded(err, dst_id=msg.src_id, handle=msg.reply_to, flags=FLAG_ERROR)

    def _on_shutdown(self, msg: Message) -> None:
        LOG.debug("%r: shutdown requested by %s", self, self.name_of(msg.src_id))
        self.broker.shutdown()

    def _on_allocate_id(self, msg: Message) -> None:
        refused = self.table.allocate_for()
        if refused is not None:
            self._refuse(msg, refused.reason)
            return
        self._route(Message.encoded(self.allocate_id(), dst_id=msg.src_id, src_id=self.context_id, handle=msg.reply_to))

    def _on_add_route(self, msg: Message) -> None:
        refused = self.table.add_route(msg)
        if refused is not None:
            self._refuse(msg, refused.reason)
            return
        if self.parent is not None:
            self.parent.send(Message(dst_id=self.parent_id or 0, src_id=self.context_id, handle=ADD_ROUTE, data=msg.data))

    def _on_del_route(self, msg: Message) -> None:
        lost, cause = self.table.del_route(msg)
        self._lose(lost, cause)

    # -- loss -----------------------------------------------------------------------
    def on_stream_disconnect(self, stream: Stream, reason: str) -> None:
        """Broker callback: a stream ended. Fail everything behind it, saying why.

        When the peer ended it (not a protocol error, not our shutdown) and the
        stream's owner can tell how its program ended (``explain_loss``, a child
        process), the pending calls fail once it has: with the signal that killed
        the interpreter, or ssh's last words, instead of "connection closed". The
        routes go at once, so nothing new is sent there meanwhile.
        """
        if stream is self.parent:
            LOG.debug("%r: parent stream lost (%s); exiting", self, reason)
            self._fail_receivers(None, StreamError("%s lost its parent: %s" % (self.name, reason)))
            self.broker.shutdown()
            return
        lost = self.table.stream_lost(stream)
        who = self.name_of(stream.remote_id)
        owner = stream.owner
        explain = getattr(owner, "explain_loss", None)

        def lose(cause: str, status: Optional[int] = None) -> None:
            text = "%s disconnected: %s (seen by %s)" % (who, cause, self.name)
            self._lose(lost, StreamError(text) if status is None else InterpreterLost(text, status))
            if owner is not None and hasattr(owner, "reap_later"):
                owner.reap_later()

        if explain is not None and stream.lost_by_peer and not self.broker.stopping:
            explain(self.broker, reason, lose)
        else:
            lose(reason)

    def _lose(self, lost: Set[int], cause: StreamError) -> None:
        if not lost:
            return
        self.table.forget(lost)
        self._fail_receivers(lost, cause)
        for fn in self.on_route_lost:
            try:
                fn(lost, str(cause))
            except Exception:
                LOG.exception("%r: route-lost hook failed", self)
        if self.parent is not None and self.parent.connected:
            self.parent.send(
                Message.encoded((sorted(lost), cause), dst_id=self.parent_id or 0, src_id=self.context_id, handle=DEL_ROUTE)
            )

    def _fail_receivers(self, lost: Optional[Iterable[int]], cause: StreamError) -> None:
        for h in self.table.take_waiting(lost):
            h.fn(dead_message(cause))

    def _on_broker_shutdown(self) -> None:
        routes = self.table.routes
        for stream in list(routes.values()):
            if stream.connected and stream.remote_id in routes:
                stream.send(Message(dst_id=stream.remote_id, src_id=self.context_id, handle=SHUTDOWN))
        self._fail_receivers(None, StreamError("%s is shutting down" % self.name))

    def close(self) -> None:
        """Stop the call pool (after the broker has stopped)."""
        self.pool.close()
