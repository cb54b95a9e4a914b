# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The event loop: one thread per process owning every file descriptor (private).

Owns: the ``Broker`` thread (a ``selectors`` loop, epoll where present), timers,
cross-thread wake-ups, and ``Stream``: a framed, non-blocking, buffered connection
to one peer over a pair of descriptors (pipes or a socket).

Rules it keeps:
- Only the broker thread touches descriptors and stream state. Other threads hand
  work over with ``Broker.defer()``.
- Writes are buffered. When a stream's buffer passes ``HIGH_WATER`` the streams
  feeding it stop being read (the broker thread never blocks, never buffers without
  bound), and threads sending through it wait in ``Stream.wait_drained()`` until it
  falls below ``LOW_WATER``.
- A peer's protocol error or EOF ends that stream only, with a reason that the
  router turns into errors for everything pending on it.
- A stream that crosses a network may be compressed: one zlib stream each way for
  the life of the connection, flushed at every write, so that what repeats from one
  message to the next (module arguments, result keys) costs a few bytes, not its
  length. Inflating is done in bounded steps: a small input cannot make one step
  allocate more than ``INFLATE_STEP``.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import selectors
import threading
import time
import zlib
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set

from ._errors import PeerProtocolError
from ._wire import FrameParser, Message, check_size

LOG = logging.getLogger("ns.mitogen.broker")

CHUNK = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1 * 1024 * 1024
INFLATE_STEP = 1024 * 1024
COMPRESS_LEVEL = 6
SPLIT_WRITE = 1024 * 1024  # bodies from this size are not copied behind their header


class Timer:
    """A callback the broker runs once at ``when`` unless cancelled first."""

    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when: float, fn: Callable[[], Any]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "Timer") -> bool:
        return self.when < other.when

    def __repr__(self) -> str:
        return "Timer(in %.3fs, %r)" % (self.when - time.monotonic(), self.fn)


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


class Broker:
    """One I/O thread. ``start()`` it, ``shutdown()`` it, ``join()`` it."""

    def __init__(self, name: str = "ns.mitogen.broker") -> None:
        self.name = name
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        set_nonblocking(self._wake_r)
        set_nonblocking(self._wake_w)
        self._sel.register(self._wake_r, selectors.EVENT_READ, (self._drain_wake, None))
        self._lock = threading.Lock()
        self._queue: Deque[Callable[[], Any]] = deque()
        self._timers: List[Timer] = []
        self._readers: Dict[int, Callable[[], Any]] = {}
        self._writers: Dict[int, Callable[[], Any]] = {}
        self.streams: Set["Stream"] = set()
        self._alive = True
        self._stopping = False
        self._on_shutdown: List[Callable[[], Any]] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __repr__(self) -> str:
        return "Broker(%s, streams=%d)" % (self.name, len(self.streams))

    # -- cross-thread entry points ------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the broker thread, soon (in order of deferral)."""
        with self._lock:
            self._queue.append(lambda: fn(*args))
        self._wake()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        """Schedule ``fn`` on the broker thread after ``delay`` seconds."""
        timer = Timer(time.monotonic() + delay, fn)
        self.defer(heapq.heappush, self._timers, timer)
        return timer

    def on_shutdown(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` on the broker thread when shutdown begins."""
        self._on_shutdown.append(fn)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask every stream to close, flush what can be flushed within ``timeout``."""
        self._shutdown_deadline = time.monotonic() + timeout
        self.defer(self._begin_shutdown)

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread.is_alive() and not self.on_thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def stopping(self) -> bool:
        """True once ``shutdown()`` began: streams end because we end them."""
        return self._stopping

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already pending, or closed during shutdown

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- broker-thread API --------------------------------------------------------
    def _update(self, fd: int) -> None:
        events = (selectors.EVENT_READ if fd in self._readers else 0) | (selectors.EVENT_WRITE if fd in self._writers else 0)
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            key = None
        if key is None:
            if events:
                self._sel.register(fd, events, fd)
        elif events:
            self._sel.modify(fd, events, fd)
        else:
            self._sel.unregister(fd)

    def add_reader(self, fd: int, fn: Callable[[], Any]) -> None:
        self._readers[fd] = fn
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, fn: Callable[[], Any]) -> None:
        self._writers[fd] = fn
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    # -- loop ---------------------------------------------------------------------
    def _run_queue(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                fn = self._queue.popleft()
            try:
                fn()
            except Exception:
                LOG.exception("%r: deferred call failed", self)

    def _run_timers(self) -> Optional[float]:
        now = time.monotonic()
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                try:
                    timer.fn()
                except Exception:
                    LOG.exception("%r: timer failed", self)
        if self._timers:
            return max(0.0, self._timers[0].when - time.monotonic())
        return None

    def _run(self) -> None:
        try:
            while self._alive:
                self._run_queue()
                timeout = self._run_timers()
                if self._stopping:
                    if self._shutdown_done():
                        break
                    timeout = 0.05 if timeout is None else min(timeout, 0.05)
                for key, mask in self._sel.select(timeout):
                    if key.data is not None and isinstance(key.data, tuple):
                        key.data[0]()
                        continue
                    fd = key.fd
                    if mask & selectors.EVENT_READ and fd in self._readers:
                        self._call(self._readers[fd])
                    if mask & selectors.EVENT_WRITE and fd in self._writers:
                        self._call(self._writers[fd])
        except Exception:
            LOG.exception("%r: event loop crashed", self)
        finally:
            self._final_close()

    def _call(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            LOG.exception("%r: I/O callback failed", self)

    def _begin_shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for fn in self._on_shutdown:
            self._call(fn)
        for stream in list(self.streams):
            stream.close_soon("broker shutting down")

    def _shutdown_done(self) -> bool:
        """Whether a shutdown in progress is over (every stream gone, or out of time)."""
        if not self.streams or time.monotonic() > self._shutdown_deadline:
            self._alive = False
        return not self._alive

    def _final_close(self) -> None:
        self._alive = False
        self._run_queue()
        for stream in list(self.streams):
            stream.disconnect("broker stopped")
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class Stream:
    """A framed connection to one peer over ``rfd``/``wfd`` (may be the same fd).

    ``on_message(stream, msg)`` is called for each message, ``on_disconnect(stream,
    reason)`` once when the stream ends. ``remote_id`` and ``name`` describe the peer
    for routing and error messages; ``owner`` is whatever created it (e.g. a child
    process handle, closed on disconnect).
    """

    def __init__(
        self,
        broker: Broker,
        rfd: int,
        wfd: int,
        name: str,
        on_message: Callable[["Stream", Message], Any],
        on_disconnect: Callable[["Stream", str], Any],
        max_message: int,
        owner: Any = None,
        initial: bytes = b"",
        compress: bool = False,
    ) -> None:
        self.broker = broker
        self.rfd = rfd
        self.wfd = wfd
        self.name = name
        self.remote_id = -1
        self.owner = owner
        self.parser = FrameParser(max_message)
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._out: Deque[memoryview] = deque()
        self.buffered = 0
        self.queued = 0  # bytes other threads handed to the broker, not yet buffered
        self.connected = True
        self.closing = False
        self.lost_by_peer = False  # ended by the peer's end of file or an I/O error, not by us
        self._blocked: Set["Stream"] = set()  # streams not read while we are full
        self._paused = False
        self._cond = threading.Condition()
        self.bytes_in = 0  # on the wire (compressed, if the stream is)
        self.bytes_out = 0
        self._initial = initial
        self._deflate = zlib.compressobj(COMPRESS_LEVEL) if compress else None
        self._inflate = zlib.decompressobj() if compress else None

    def __repr__(self) -> str:
        return "Stream(%s, id=%d, buffered=%d%s%s)" % (
            self.name,
            self.remote_id,
            self.buffered,
            ", compressed" if self._deflate is not None else "",
            "" if self.connected else ", disconnected",
        )

    def start(self) -> None:
        """Register with the broker (broker thread)."""
        set_nonblocking(self.rfd)
        if self.wfd != self.rfd:
            set_nonblocking(self.wfd)
        self.broker.streams.add(self)
        self.broker.add_reader(self.rfd, self._on_readable)
        if self._initial:
            initial, self._initial = self._initial, b""
            self._feed(initial)

    # -- reading ------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self.rfd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost_by_peer = True
            self.disconnect("read failed: %s" % exc)
            return
        if not data:
            self.lost_by_peer = True
            self.disconnect("connection closed by peer")
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self._inflate is None:
            self._parse(data)
            return
        try:
            while data and self.connected:
                plain = self._inflate.decompress(data, INFLATE_STEP)
                data = self._inflate.unconsumed_tail
                self._parse(plain)
        except zlib.error as exc:
            LOG.error("%r: corrupt compressed stream, dropping it: %s", self, exc)
            self.disconnect("protocol error: corrupt compressed stream (%s)" % exc)

    def _parse(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except PeerProtocolError as exc:
            LOG.error("%r: protocol error, dropping stream: %s", self, exc)
            self.disconnect("protocol error: %s" % exc)
            return
        for msg in messages:
            msg.stream = self
            self._on_message(self, msg)
            if not self.connected:
                return

    def pause(self, full: "Stream") -> None:
        """Stop reading until ``full`` drains (back-pressure from a forward)."""
        if not self._paused and self.connected:
            self._paused = True
            self.broker.remove_reader(self.rfd)
        full._blocked.add(self)

    def _resume(self) -> None:
        if self._paused and self.connected:
            self._paused = False
            self.broker.add_reader(self.rfd, self._on_readable)

    # -- writing ------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Queue ``msg`` for the peer (broker thread).

        Raises ``ProtocolError`` (nothing sent) for a message over the stream's
        maximum: the peer's parser would drop the stream for it. The maximum is
        this side's own receive limit; both ends of a stream share it.
        """
        check_size(msg, self.parser.max_message)
        if len(msg.data) < SPLIT_WRITE:
            self.write(msg.pack())
        else:  # no copy of a large body: header and body go as two writes
            self.write(msg.header())
            self.write(msg.data)

    def write(self, data: bytes) -> None:
        if not self.connected:
            return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.bytes_out += len(data)
        rest = memoryview(data)
        if not self._out:
            try:
                n = os.write(self.wfd, data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.lost_by_peer = True
                self.disconnect("write failed: %s" % exc)
                return
            if n == len(data):
                return
            rest = rest[n:]  # not a copy of it
            self.broker.add_writer(self.wfd, self._on_writable)
        self._out.append(rest)
        self.buffered += len(rest)

    @property
    def full(self) -> bool:
        return self.buffered + self.queued > HIGH_WATER

    def reserve(self, n: int) -> None:
        """Count ``n`` bytes another thread is handing to the broker for this stream."""
        with self._cond:
            self.queued += n

    def release(self, n: int) -> None:
        """The broker took the reserved bytes (they are now buffered or written)."""
        with self._cond:
            self.queued -= n
            if not self.full:
                self._cond.notify_all()

    def _on_writable(self) -> None:
        while self._out:
            chunk = self._out[0]
            try:
                n = os.write(self.wfd, chunk)
            except BlockingIOError:
                break
            except OSError as exc:
                self.lost_by_peer = True
                self.disconnect("write failed: %s" % exc)
                return
            self.buffered -= n
            if n == len(chunk):
                self._out.popleft()
            else:
                self._out[0] = chunk[n:]
                break
        if not self._out:
            self.broker.remove_writer(self.wfd)
            if self.closing:
                self.disconnect(self._close_reason)
                return
        if self.buffered <= LOW_WATER:
            self._drained()

    def _drained(self) -> None:
        blocked, self._blocked = self._blocked, set()
        for stream in blocked:
            stream._resume()
        with self._cond:
            self._cond.notify_all()

    def wait_drained(self, timeout: Optional[float] = None) -> bool:
        """Block a non-broker thread while this stream is over its high-water mark."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.connected and self.full:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
        return True

    # -- ending -------------------------------------------------------------------
    def close_soon(self, reason: str) -> None:
        """Disconnect once queued output is flushed (broker thread)."""
        self._close_reason = reason
        self.closing = True
        if not self._out:
            self.disconnect(reason)

    def disconnect(self, reason: str) -> None:
        """End the stream now: close descriptors, report ``reason`` once."""
        if not self.connected:
            return
        self.connected = False
        self.broker.remove_reader(self.rfd)
        self.broker.remove_writer(self.wfd)
        self.broker.streams.discard(self)
        for fd in sorted({self.rfd, self.wfd}):  # once each, even when they are one fd
            try:
                os.close(fd)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    LOG.debug("%r: close(%d): %s", self, fd, exc)
        self._out.clear()
        self.buffered = 0
        self._drained()
        try:
            self._on_disconnect(self, reason)
        except Exception:
            LOG.exception("%r: disconnect handler failed", self)
