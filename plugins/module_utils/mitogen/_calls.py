# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mailboxes and calls between contexts (private module).

Owns: ``Receiver`` (a mailbox on one handle), ``Context`` (a reference to a peer you
can call), the call body (``(module, qualname)``, args, kwargs) and how a peer's
function reference is resolved (``resolve_function``: module-level names only, no
dunder attributes), ``AfterReply`` and the ``CallPool`` that runs incoming calls.
``_router.Router`` routes what these send and executes the calls.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from ._errors import PeerProtocolError, RefusedError, StreamError, TimeoutError
from ._wire import CALL_FUNCTION, SHUTDOWN, Message

if TYPE_CHECKING:
    from ._shapes import CallRouter as Router

LOG = logging.getLogger("ns.mitogen.router")
# Python 3.6 has no SimpleQueue (3.7); Queue does the same here (put, get with a timeout).
_SimpleQueue: Any = getattr(queue, "SimpleQueue", queue.Queue)


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
        # Only the respondent writes here (and a hop on the way to it, to say it cannot).
        policy = _anyone if respondent is None else router.reply_policy(respondent)
        self.handle = router.add_handler(self._put, policy=policy, persist=persist, respondent=respondent)

    def __repr__(self) -> str:
        return "Receiver(handle=%d, respondent=%s)" % (self.handle, self.respondent)

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
        self._queue.put(dead_message(StreamError("receiver closed")))


def _anyone(msg: Message) -> bool:
    return True


def is_dead(msg: Message) -> bool:
    """True for the marker a handler with a respondent gets when that peer is lost."""
    return msg.stream == "dead"


def dead_error(msg: Message) -> StreamError:
    """The error a dead marker (``is_dead``) carries: why its peer was lost."""
    cause = msg.decode()
    return cause if isinstance(cause, StreamError) else StreamError(str(cause))


def dead_message(cause: StreamError) -> Message:
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
        self.peak = 0  # most calls running at once (diagnostics, tests)
        self._run_call: Callable[[Message], None] = router.run_call
        if os.environ.get("NS_MITOGEN_CALL_PROFILE"):  # each call measured: _callprofile (not in the boot payload)
            self._run_call = self._measure_calls

    def _measure_calls(self, msg: Message) -> None:
        """The first call: from now on, every call through ``_callprofile`` (imported now the importer is up)."""
        from ._callprofile import wrap

        self._run_call = wrap(self.router.run_call)
        self._run_call(msg)

    def __repr__(self) -> str:
        return "CallPool(threads=%d, idle=%d)" % (len(self._threads), self._idle)

    def submit(self, msg: Message) -> None:
        """Run the call in ``msg`` on a pool thread."""
        self.submit_fn(self._run_call, msg)

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
            self.peak = max(self.peak, len(self._threads) - self._idle)
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
