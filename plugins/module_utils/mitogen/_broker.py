# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The event loop: one thread per process owning every file descriptor (private).

Owns: the ``Broker`` thread (a ``selectors`` loop, epoll where present), timers,
cross-thread wake-ups and the readers/writers registered on descriptors. The
framed connections it serves are ``_stream.Stream``.

Rules it keeps:
- Only the broker thread touches descriptors and stream state. Other threads hand
  work over with ``Broker.defer()``.
- A callback that raises is logged and the loop goes on; a shutdown waits (up to
  its timeout) for every stream to end before the thread exits.
"""

from __future__ import annotations

import heapq
import logging
import os
import selectors
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Set

if TYPE_CHECKING:
    from ._shapes import BrokerStream

LOG = logging.getLogger("ns.mitogen.broker")


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
        self.streams: Set["BrokerStream"] = set()  # the _stream.Stream objects it serves
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
