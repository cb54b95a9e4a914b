"""Latency-adding TCP relay (user-space stand-in for netem).

Owns one thing: accept TCP connections on --listen, connect each to
--connect, and forward every chunk read from either side to the other side
only after it has been held for --delay-ms (one-way delay).  Run in front of
sshd with delay = rtt/2, a round trip through it grows by rtt.

Design: a single selectors event loop, a heap of due times, no threads.
Each received chunk is kept as the one bytes object recv() returned and sent
with sendmsg() (scatter/gather, no joining copies); a partial send keeps a
memoryview of the rest.  TCP_NODELAY is set on both sides.  Order is kept
because each direction is a FIFO whose due times only grow.  End of stream is
forwarded as shutdown(SHUT_WR) after the same delay (half-close); a reset or
error on either side closes both sides at once.  Reading from a side stops
while the queue towards its peer holds more than HIGH_WATER bytes, so memory
stays bounded.

Standalone script, standard library only: it is started by the testbed as
`python relay.py --listen ADDR:PORT --connect ADDR:PORT --delay-ms N`
inside a host's network namespace, prints "READY" on stdout once listening,
and runs until killed (SIGTERM/SIGINT exit cleanly).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import itertools
import selectors
import signal
import socket
import sys
import time

CHUNK = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
MAX_IOV = 64
CONNECT_TIMEOUT = 5.0


class Flow:
    """One direction of a relayed connection: bytes read from src, sent to dst."""

    def __init__(self, conn: Conn, src: socket.socket, dst: socket.socket) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.queue: collections.deque[tuple[float, memoryview | None]] = collections.deque()
        self.pending = 0
        self.reading = True  # src not yet at EOF
        self.blocked = False  # dst's send buffer full: wait for EVENT_WRITE
        self.done = False  # EOF forwarded to dst

    def wants_read(self) -> bool:
        return self.reading and self.pending < HIGH_WATER

    def push(self, due: float, data: memoryview | None) -> bool:
        """Queue a chunk (None = EOF); True if it became the head (needs a timer)."""
        self.queue.append((due, data))
        if data is not None:
            self.pending += len(data)
        return len(self.queue) == 1

    def flush(self, now: float) -> float | None:
        """Send every due chunk; return the next due time to schedule, if any."""
        while self.queue and self.queue[0][0] <= now and not self.blocked:
            if self.queue[0][1] is None:
                self.queue.popleft()
                self.dst.shutdown(socket.SHUT_WR)
                self.done = True
                return None
            buffers = []
            for due, data in itertools.islice(self.queue, MAX_IOV):
                if due > now or data is None:
                    break
                buffers.append(data)
            try:
                sent = self.dst.sendmsg(buffers)
            except BlockingIOError:
                self.blocked = True
                return None
            self.pending -= sent
            while sent:
                due, data = self.queue[0]
                if data is None:
                    break
                if sent >= len(data):
                    sent -= len(data)
                    self.queue.popleft()
                else:
                    self.queue[0] = (due, data[sent:])
                    sent = 0
                    self.blocked = True  # short write: kernel buffer is full
        if self.queue and not self.blocked:
            return self.queue[0][0]
        return None


class Conn:
    """A relayed connection: client socket a, upstream socket b, two flows."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.a = a
        self.b = b
        self.up = Flow(self, a, b)
        self.down = Flow(self, b, a)
        self.closed = False

    def flows_touching(self, sock: socket.socket) -> tuple[Flow, Flow]:
        """(flow reading from sock, flow writing to sock)."""
        return (self.up, self.down) if sock is self.a else (self.down, self.up)


class Relay:
    """The event loop: listener, connections, timers."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, Flow]] = []
        self.seq = itertools.count()
        self.listener = socket.create_server(listen, backlog=512, reuse_port=False)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)

    # -- bookkeeping -------------------------------------------------------
    def schedule(self, due: float, flow: Flow) -> None:
        heapq.heappush(self.timers, (due, next(self.seq), flow))

    def update(self, conn: Conn, sock: socket.socket) -> None:
        if conn.closed:
            return
        reader, writer = conn.flows_touching(sock)
        mask = 0
        if reader.wants_read():
            mask |= selectors.EVENT_READ
        if writer.blocked:
            mask |= selectors.EVENT_WRITE
        try:
            key = self.sel.get_key(sock)
        except KeyError:
            key = None
        if key is None:
            if mask:
                self.sel.register(sock, mask, conn)
        elif mask == 0:
            self.sel.unregister(sock)
        elif key.events != mask:
            self.sel.modify(sock, mask, conn)

    def close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        for sock in (conn.a, conn.b):
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    # -- events ------------------------------------------------------------
    def accept(self) -> None:
        while True:
            try:
                client, _unused = self.listener.accept()
            except BlockingIOError:
                return
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT)
            except OSError:
                client.close()
                continue
            conn = Conn(client, upstream)
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.update(conn, client)
            self.update(conn, upstream)

    def readable(self, conn: Conn, sock: socket.socket) -> None:
        flow, _unused = conn.flows_touching(sock)
        if not flow.wants_read():
            return
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        due = time.monotonic() + self.delay
        if data:
            if flow.push(due, memoryview(data)):
                self.schedule(due, flow)
        else:
            flow.reading = False
            if flow.push(due, None):
                self.schedule(due, flow)
        self.update(conn, sock)

    def writable(self, conn: Conn, sock: socket.socket) -> None:
        _unused, flow = conn.flows_touching(sock)
        flow.blocked = False
        self.run_flow(flow)

    def run_flow(self, flow: Flow) -> None:
        conn = flow.conn
        if conn.closed:
            return
        try:
            nxt = flow.flush(time.monotonic())
        except OSError:
            self.close(conn)
            return
        if nxt is not None:
            self.schedule(nxt, flow)
        if conn.up.done and conn.down.done:
            self.close(conn)
            return
        self.update(conn, flow.src)
        self.update(conn, flow.dst)

    def serve_forever(self) -> None:
        while True:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, events in self.sel.select(timeout):
                if key.data is None:
                    self.accept()
                    continue
                conn: Conn = key.data
                sock = key.fileobj
                if events & selectors.EVENT_WRITE and not conn.closed:
                    self.writable(conn, sock)  # type: ignore[arg-type]
                if events & selectors.EVENT_READ and not conn.closed:
                    self.readable(conn, sock)  # type: ignore[arg-type]
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _unused, _unused, flow = heapq.heappop(self.timers)
                self.run_flow(flow)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_addr, required=True)
    parser.add_argument("--connect", type=parse_addr, required=True)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        relay = Relay(args.listen, args.connect, args.delay_ms / 1000.0)
    except OSError as exc:
        print(f"relay: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    print("READY", flush=True)
    try:
        relay.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
