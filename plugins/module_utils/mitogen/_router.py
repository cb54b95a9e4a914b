# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing, mailboxes and calls between contexts (private module).

Owns: the route table (context id -> stream), handles and their policies,
``Receiver`` mailboxes, ``Context`` (a reference to a peer you can call), the call
protocol and disconnect propagation.

Trust rules kept here (every message from a peer passes through ``_route``):
- Parents command children, never the reverse: ``CALL_FUNCTION`` is accepted only
  from the parent stream. A child reaches its ancestors only through handles whose
  policy admits it (replies it owes, module requests, logs, exposed services).
- A message from a child stream must carry a source id routed to that very stream
  (no forged source ids), and may travel only upwards: never down into another
  subtree (no routing to siblings).
- When a stream dies, every route through it is removed, every mailbox waiting on a
  context behind it fails with a ``StreamError`` naming the context, the cause as
  far as this hop can know it (``on_stream_disconnect``) and the hop where the loss
  was seen, and the loss is reported upwards (``DEL_ROUTE``) with that error, so
  that the caller far away reads the same cause (an ``InterpreterLost`` when only
  the interpreter ended and the way to it still works).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from ._broker import Broker, Stream
from ._errors import (
    CallError,
    ConnectError,
    InterpreterLost,
    PeerProtocolError,
    ProtocolError,
    RefusedError,
    StreamError,
    TimeoutError,
)
from ._wire import (
    ADD_ROUTE,
    ALLOCATE_ID,
    CALL_FUNCTION,
    DEL_ROUTE,
    FIRST_DYNAMIC_HANDLE,
    FLAG_ERROR,
    SHUTDOWN,
    Message,
    too_large,
)

LOG = logging.getLogger("ns.mitogen.router")
# Python 3.6 has no SimpleQueue (3.7); Queue does the same here (put, get with a timeout).
_SimpleQueue: Any = getattr(queue, "SimpleQueue", queue.Queue)

Policy = Callable[[Message], bool]


class Receiver:
    """A mailbox on one handle. ``get()`` returns the next ``Message``.

    ``respondent`` is the context expected to write here: only its messages are
    accepted, and if its route dies, ``get()`` raises ``StreamError`` at once.
    """

    def __init__(self, router: "Router", respondent: Optional[int], persist: bool = False) -> None:
        self.router = router
        self.respondent = respondent
        self.persist = persist
        self._queue: "queue.SimpleQueue[Message]" = _SimpleQueue()
        self.handle = router.add_handler(self._put, policy=self._policy, persist=persist, respondent=respondent)

    def __repr__(self) -> str:
        return "Receiver(handle=%d, respondent=%s)" % (self.handle, self.respondent)

    def _policy(self, msg: Message) -> bool:
        if self.respondent is None or msg.src_id == self.respondent:
            return True
        if not msg.is_error:
            return False
        # A hop between us and the respondent may report that it cannot deliver.
        return self.router.from_parent(msg) or (msg.stream is not None and self.router.route_for(self.respondent) is msg.stream)

    def _put(self, msg: Message) -> None:
        self._queue.put(msg)

    def get(self, timeout: Optional[float] = None) -> Message:
        """Wait for the next message; raise ``TimeoutError`` or ``StreamError``."""
        try:
            msg = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no reply from %s within %.1fs" % (self.router.name_of(self.respondent), timeout or 0)) from None
        if is_dead(msg):
            raise dead_error(msg)
        return msg

    def close(self) -> None:
        self.router.del_handler(self.handle)
        self._queue.put(_dead(StreamError("receiver closed")))


def is_dead(msg: Message) -> bool:
    """True for the marker a handler with a respondent gets when that peer is lost."""
    return msg.stream == "dead"


def dead_error(msg: Message) -> StreamError:
    """The error a dead marker (``is_dead``) carries: why its peer was lost."""
    cause = msg.decode()
    return cause if isinstance(cause, StreamError) else StreamError(str(cause))


def _dead(cause: StreamError) -> Message:
    msg = Message.encoded(cause)
    msg.stream = "dead"
    return msg


class Context:
    """A peer context: call functions in it, or send messages to its handles."""

    def __init__(self, router: "Router", context_id: int, name: str) -> None:
        self.router = router
        self.context_id = context_id
        self.name = name

    def __repr__(self) -> str:
        return "Context(%d, %r)" % (self.context_id, self.name)

    def call_async(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> "Receiver":
        """Start ``fn(*args, **kwargs)`` there; the reply arrives on the receiver."""
        recv = Receiver(self.router, respondent=self.context_id)
        self.call_into(recv, fn, *args, **kwargs)
        return recv

    def call_into(self, recv: "Receiver", fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Start ``fn(*args, **kwargs)`` there, replying to an existing receiver."""
        body = (_fn_ref(fn), args, kwargs)
        self.router.send(Message.encoded(body, dst_id=self.context_id, handle=CALL_FUNCTION, reply_to=recv.handle))

    def call(self, fn: Callable[..., Any], *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` there and return its value.

        Raises ``CallError`` (the remote exception, with its traceback),
        ``StreamError`` if the context is lost meanwhile, ``TimeoutError``.
        """
        recv = self.call_async(fn, *args, **kwargs)
        try:
            return recv.get(timeout).decode()
        finally:
            recv.close()

    def call_no_reply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` there without waiting; a failure is logged by the remote side."""
        self.router.send(Message.encoded((_fn_ref(fn), args, kwargs), dst_id=self.context_id, handle=CALL_FUNCTION))

    def send(self, msg: Message) -> None:
        msg.dst_id = self.context_id
        self.router.send(msg)

    def shutdown(self) -> None:
        """Ask the context to exit (its children exit with it)."""
        self.router.send(Message(dst_id=self.context_id, handle=SHUTDOWN))


def _fn_ref(fn: Callable[..., Any]) -> tuple:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise TypeError("%r cannot be called remotely: only module-level functions and class attributes can" % fn)
    return (module, qualname)


def resolve_function(ref: Any) -> Callable[..., Any]:
    """Import and return the function a peer named by ``(module, qualname)``."""
    if not (isinstance(ref, tuple) and len(ref) == 2 and all(isinstance(p, str) for p in ref)):
        raise PeerProtocolError("malformed function reference %r" % (ref,))
    module, qualname = ref
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        if part.startswith("__"):
            raise RefusedError("refusing to call dunder attribute %s.%s" % (module, qualname))
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError("%s.%s is not callable" % (module, qualname))
    return obj  # type: ignore[no-any-return]


class AfterReply:
    """A called function's value, and work to do once the reply carrying it is sent.

    For work the caller need not wait for (the module runner puts the process
    state back after a run). ``run_call`` sends ``value``, then calls ``then()`` on
    the same thread; every call or service request that starts meanwhile waits
    until it is done, so none sees what ``then`` is undoing.
    """

    __slots__ = ("value", "then")

    def __init__(self, value: Any, then: Callable[[], None]) -> None:
        self.value = value
        self.then = then


class CallPool:
    """Threads that run incoming calls, grown on demand up to ``size``."""

    def __init__(self, router: "Router", size: int = 16) -> None:
        self.router = router
        self.size = size
        self._queue: "queue.SimpleQueue[Optional[tuple]]" = _SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False
        self._after = 0  # AfterReply work in progress
        self._settled = threading.Condition(self._lock)

    def __repr__(self) -> str:
        return "CallPool(threads=%d, idle=%d)" % (len(self._threads), self._idle)

    def submit(self, msg: Message) -> None:
        """Run the call in ``msg`` on a pool thread."""
        self.submit_fn(self.router.run_call, msg)

    def submit_fn(self, fn: Callable[[Message], Any], msg: Message) -> None:
        """Run ``fn(msg)`` on a pool thread, starting one if none is idle."""
        with self._lock:
            if self._closed:
                return
            if self._idle <= 0 and len(self._threads) < self.size:
                t = threading.Thread(target=self._worker, name="ns.mitogen.call-%d" % len(self._threads), daemon=True)
                self._threads.append(t)
                self._idle += 1
                t.start()
            self._idle -= 1
        self._queue.put((fn, msg))

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, msg = item
            if self._after:  # set before the reply that may have prompted this job was sent
                with self._lock:
                    while self._after:
                        self._settled.wait()
            try:
                fn(msg)
            except Exception:
                LOG.exception("%r: call failed outside its own error handling", self)
            with self._lock:
                self._idle += 1

    @property
    def busy(self) -> int:
        """How many calls are running now."""
        with self._lock:
            return len(self._threads) - self._idle

    def after_reply(self, then: Callable[[], None]) -> Callable[[], None]:
        """Count ``then`` as in progress now (jobs starting wait); the call that runs it."""
        with self._lock:
            self._after += 1

        def run() -> None:
            try:
                then()
            except Exception:
                LOG.exception("%r: work after a reply failed", self)
            finally:
                with self._lock:
                    self._after -= 1
                    self._settled.notify_all()

        return run

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads; wait at most ``timeout`` in all for busy ones."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _n in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))


class _Handler:
    __slots__ = ("fn", "policy", "persist", "respondent")

    def __init__(self, fn: Callable[[Message], Any], policy: Policy, persist: bool, respondent: Optional[int]) -> None:
        self.fn = fn
        self.policy = policy
        self.persist = persist
        self.respondent = respondent


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
        self.parent: Optional[Stream] = None
        self.parent_id: Optional[int] = None
        self._routes: Dict[int, Stream] = {}
        self._names: Dict[int, str] = {context_id: name}
        self._handlers: Dict[int, _Handler] = {}
        self._handle_ids = itertools.count(FIRST_DYNAMIC_HANDLE)
        self._id_counter = itertools.count(context_id + 1)
        self._allocated: Set[int] = set()
        self._lock = threading.Lock()
        self.pool = CallPool(self)
        self.responder: Any = None  # this context's module Responder, once made
        self.stats: Dict[str, int] = {"refused": 0, "forged": 0, "no_route": 0}
        self.on_route_lost: List[Callable[[Set[int], str], Any]] = []
        self.add_handler(self._on_call, CALL_FUNCTION, policy=self.from_parent)
        self.add_handler(self._on_shutdown, SHUTDOWN, policy=self.from_parent)
        self.add_handler(self._on_add_route, ADD_ROUTE, policy=self.from_child_stream)
        self.add_handler(self._on_del_route, DEL_ROUTE, policy=self.from_child_stream)
        self.add_handler(self._on_allocate_id, ALLOCATE_ID, policy=self.from_descendant)
        broker.on_shutdown(self._on_broker_shutdown)

    def __repr__(self) -> str:
        return "Router(%d %r, routes=%d)" % (self.context_id, self.name, len(self._routes))

    # -- policies -----------------------------------------------------------------
    def from_parent(self, msg: Message) -> bool:
        """Admit messages from this process or from the parent stream (ancestors)."""
        return msg.stream is None or msg.stream is self.parent

    def from_child_stream(self, msg: Message) -> bool:
        """Admit messages sent by a direct child over its own stream."""
        return msg.stream is not None and msg.stream is not self.parent and msg.src_id == msg.stream.remote_id

    def reply_policy(self, respondent: int) -> Policy:
        """Admit messages from ``respondent``, and errors from hops on the way to it."""

        def policy(msg: Message) -> bool:
            if msg.src_id == respondent:
                return True
            # A hop between us and the respondent may report that it cannot deliver.
            return msg.is_error and (
                self.from_parent(msg) or (msg.stream is not None and self.route_for(respondent) is msg.stream)
            )

        return policy

    def from_descendant(self, msg: Message) -> bool:
        """Admit messages from any context below this one (or this process)."""
        return msg.stream is None or msg.stream is not self.parent

    # -- handles ------------------------------------------------------------------
    def add_handler(
        self,
        fn: Callable[[Message], Any],
        handle: Optional[int] = None,
        policy: Optional[Policy] = None,
        persist: bool = True,
        respondent: Optional[int] = None,
    ) -> int:
        """Register ``fn(msg)`` (run on the broker thread) for ``handle``; return it."""
        if handle is None:
            handle = next(self._handle_ids)
        self._handlers[handle] = _Handler(fn, policy or self.from_parent, persist, respondent)
        return handle

    def del_handler(self, handle: int) -> None:
        self._handlers.pop(handle, None)

    # -- names and routes -----------------------------------------------------------
    def name_of(self, context_id: Optional[int]) -> str:
        if context_id is None:
            return "any context"
        return self._names.get(context_id, "context %d" % context_id)

    def context(self, context_id: int) -> Context:
        return Context(self, context_id, self.name_of(context_id))

    def route_for(self, context_id: int) -> Optional[Stream]:
        return self._routes.get(context_id, self.parent)

    def allocate_id(self, timeout: float = 30.0) -> int:
        """A fresh context id, unique in the whole tree (asks the root if not it)."""
        if self.parent is None:
            with self._lock:
                new = next(self._id_counter)
                self._allocated.add(new)
            return new
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
            self._routes[context_id] = stream
            self._names[context_id] = name
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
        self.parent = stream
        self.parent_id = parent_id

    # -- sending ------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send ``msg`` from this context (any thread)."""
        msg.src_id = self.context_id
        msg.stream = None
        if self.broker.on_thread:
            self._route(msg)
            return
        stream = self._routes.get(msg.dst_id, self.parent)
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
        self.stats["refused"] += 1
        LOG.warning("%r: refused %r from %s: %s", self, msg, self.name_of(msg.src_id), why)
        self._reply_error(msg, RefusedError("%s refused a message from %s: %s" % (self.name, self.name_of(msg.src_id), why)))

    def _route(self, msg: Message) -> None:
        """Deliver or forward one message (broker thread). The trust gate."""
        src_stream = msg.stream
        from_child = src_stream is not None and src_stream is not self.parent
        if from_child and self._routes.get(msg.src_id) is not src_stream:
            self.stats["forged"] += 1
            LOG.warning("%r: dropped %r from %r: source id is not behind that stream", self, msg, src_stream)
            return
        if msg.dst_id == self.context_id:
            self._deliver(msg)
            return
        out = self._routes.get(msg.dst_id)
        if out is None:
            out = self.parent
        elif from_child:
            self._refuse(msg, "a context may not send to %s, which is not its ancestor" % self.name_of(msg.dst_id))
            return
        if out is None or not out.connected:
            self.stats["no_route"] += 1
            self._reply_error(msg, StreamError("%s: no route to %s" % (self.name, self.name_of(msg.dst_id))))
            return
        if out is src_stream:
            LOG.warning("%r: dropped %r: it would go back where it came from", self, msg)
            return
        try:
            out.send(msg)
        except ProtocolError as exc:  # over the frame limit: fail that message, keep the stream
            LOG.error("%r: %s", self, exc)
            self._reply_error(msg, exc)
            return
        if src_stream is not None and out.full:
            src_stream.pause(out)

    def _deliver(self, msg: Message) -> None:
        handler = self._handlers.get(msg.handle)
        if handler is None:
            if msg.stream is not None:
                self._refuse(msg, "no handle %d here" % msg.handle)
            return
        if not handler.policy(msg):
            self._refuse(msg, "handle %d does not accept messages from %s" % (msg.handle, self.name_of(msg.src_id)))
            return
        if not handler.persist:
            self._handlers.pop(msg.handle, None)
        try:
            handler.fn(msg)
        except Exception:
            LOG.exception("%r: handler for %r failed", self, msg)

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
        if self.parent is not None:
            self._refuse(msg, "only the root allocates context ids")
            return
        self._route(Message.encoded(self.allocate_id(), dst_id=msg.src_id, src_id=self.context_id, handle=msg.reply_to))

    def _on_add_route(self, msg: Message) -> None:
        body = msg.decode()
        if not (isinstance(body, tuple) and len(body) == 2 and isinstance(body[0], int) and isinstance(body[1], str)):
            raise PeerProtocolError("malformed ADD_ROUTE")
        new_id, name = body
        current = self._routes.get(new_id)
        if new_id == self.context_id or (current is not None and current is not msg.stream):
            self._refuse(msg, "route to %s is already held elsewhere" % self.name_of(new_id))
            return
        if self.parent is None and new_id not in self._allocated:
            self._refuse(msg, "context id %d was never allocated" % new_id)
            return
        self._routes[new_id] = msg.stream
        self._names[new_id] = name
        if self.parent is not None:
            self.parent.send(Message(dst_id=self.parent_id or 0, src_id=self.context_id, handle=ADD_ROUTE, data=msg.data))

    def _on_del_route(self, msg: Message) -> None:
        body = msg.decode()
        if not (isinstance(body, tuple) and len(body) == 2 and isinstance(body[1], StreamError) and isinstance(body[0], list)):
            raise PeerProtocolError("malformed DEL_ROUTE")
        ids, cause = body
        lost = {i for i in ids if isinstance(i, int) and self._routes.get(i) is msg.stream and i != msg.src_id}
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
        lost = {i for i, s in self._routes.items() if s is stream}
        for i in lost:
            self._routes.pop(i, None)
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
        for i in lost:
            self._routes.pop(i, None)
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
        lost_set = None if lost is None else set(lost)
        for handle, h in list(self._handlers.items()):
            if h.respondent is None:
                continue
            if lost_set is None or h.respondent in lost_set:
                self._handlers.pop(handle, None)
                h.fn(_dead(cause))

    def _on_broker_shutdown(self) -> None:
        for stream in list(self._routes.values()):
            if stream.connected and stream.remote_id in self._routes:
                stream.send(Message(dst_id=stream.remote_id, src_id=self.context_id, handle=SHUTDOWN))
        self._fail_receivers(None, StreamError("%s is shutting down" % self.name))

    def close(self) -> None:
        """Stop the call pool (after the broker has stopped)."""
        self.pool.close()
