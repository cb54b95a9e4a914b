"""Measuring tools shared by every benchmark: timing loops, CPU meters, wire counters.

Owns the only two measurement loops of the suite, used for ns.mitogen and for the
OpenSSH baselines alike, so both sides are always timed the same way:

* ``time_calls(fn, n)``: call ``fn`` n times one after the other; per-call latency.
* ``run_in_flight(start, finish, total, window)``: keep ``window`` operations in
  flight until ``total`` have finished; throughput (and latency under load).

Both return ``Stats`` with the controller CPU the loop cost: this process
(``RUSAGE_SELF``), reaped children (``RUSAGE_CHILDREN``) and, read from /proc, any
live helper processes named by the caller (an ssh client that carries a ns.mitogen
stream, or an OpenSSH ControlMaster), which no rusage call covers until they exit.
"""

from __future__ import annotations

import collections
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_START = time.perf_counter()


# -- running a benchmark ---------------------------------------------------------------
def read_only_copy(installed: Path, dest: Path) -> Path:
    """``installed`` (a collections directory) copied to ``dest`` as an execution
    environment has it: no ``__pycache__``, nothing writable, and older than our code
    bundle's racy window (``_loader.RACY_SECONDS``: a bundle is not written while a source
    changed less than 2 s ago), as an installed collection is. ``writable_again(dest)``
    undoes the mode before it is removed."""
    shutil.copytree(installed, dest, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a-w", str(dest)], check=True)
    time.sleep(2.1)
    return dest


def writable_again(path: Path) -> None:
    """Undo ``read_only_copy``'s mode on ``path`` (a failure is left to the removal)."""
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)


def log(message: str) -> None:
    """Progress on stderr, with the time since the run started."""
    print("[%6.1fs] %s" % (time.perf_counter() - _START, message), file=sys.stderr, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `with`: the testbed goes down


def exit_cleanly_on_signals() -> None:
    """SIGTERM and SIGINT unwind the stack (so testbeds and helpers are torn down)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started in the background


# -- CPU -------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a live process (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def child_pids(comm: Optional[str] = None) -> List[int]:
    """Live children of this process (any thread's), optionally only those named ``comm``."""
    pids: List[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            pids += [int(p) for p in Path(f"/proc/self/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    if comm is None:
        return sorted(set(pids))
    named = []
    for pid in set(pids):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                named.append(pid)
        except OSError:
            pass
    return sorted(named)


@dataclass(frozen=True)
class CpuSample:
    self_s: float
    children_s: float
    helpers_s: float


def cpu_sample(helper_pids: Sequence[int] = ()) -> CpuSample:
    """CPU used so far by this process, its reaped children and the live helpers."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(
        self_s=me.ru_utime + me.ru_stime,
        children_s=kids.ru_utime + kids.ru_stime,
        helpers_s=sum(process_cpu_seconds(pid) for pid in helper_pids),
    )


# -- statistics ------------------------------------------------------------------------
@dataclass
class Stats:
    """Result of one measurement loop (times in seconds unless the name says ms)."""

    n: int
    wall_s: float
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    ops_per_s: float
    cpu_self_s: float
    cpu_children_s: float
    cpu_helpers_s: float
    window: int = 1

    @property
    def cpu_total_s(self) -> float:
        """Controller CPU: this process + reaped children + live helpers."""
        return self.cpu_self_s + self.cpu_children_s + self.cpu_helpers_s

    def cpu_per_call_ms(self) -> float:
        return 1000.0 * self.cpu_total_s / self.n

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["cpu_total_s"] = self.cpu_total_s
        data["cpu_per_call_ms"] = self.cpu_per_call_ms()
        return data


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(latencies: Sequence[float], wall: float, before: CpuSample, after: CpuSample, window: int = 1) -> Stats:
    ms = [1000.0 * x for x in latencies]
    return Stats(
        n=len(ms),
        wall_s=wall,
        median_ms=statistics.median(ms),
        p90_ms=percentile(ms, 90),
        mean_ms=statistics.fmean(ms),
        min_ms=min(ms),
        max_ms=max(ms),
        ops_per_s=len(ms) / wall if wall > 0 else float("inf"),
        cpu_self_s=after.self_s - before.self_s,
        cpu_children_s=after.children_s - before.children_s,
        cpu_helpers_s=after.helpers_s - before.helpers_s,
        window=window,
    )


# -- the two measurement loops ---------------------------------------------------------
def time_calls(
    fn: Callable[[], T],
    n: int,
    *,
    warmup: int = 0,
    before: Optional[Callable[[], None]] = None,
    after: Optional[Callable[[T], None]] = None,
    helper_pids: Sequence[int] = (),
) -> Stats:
    """Call ``fn`` ``n`` times in a row and time each call with ``perf_counter``.

    ``before()`` and ``after(result)`` run around each call, outside its timing (but
    inside the CPU accounting, which covers the whole loop). ``warmup`` calls run
    first and are not counted at all.
    """

    def once() -> float:
        if before is not None:
            before()
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        if after is not None:
            after(result)
        return elapsed

    for _n in range(warmup):
        once()
    cpu0 = cpu_sample(helper_pids)
    wall0 = time.perf_counter()
    latencies = [once() for _n in range(n)]
    wall = time.perf_counter() - wall0
    return summarize(latencies, wall, cpu0, cpu_sample(helper_pids))


def run_in_flight(
    start: Callable[[], T],
    finish: Callable[[T], None],
    total: int,
    window: int,
    *,
    warmup: int = 0,
    helper_pids: Sequence[int] = (),
) -> Stats:
    """Keep ``window`` operations in flight until ``total`` have finished.

    ``start()`` begins one operation and returns its handle; ``finish(handle)``
    blocks until it is done (and raises if it failed). Handles are finished in the
    order they were started, and each finished one is replaced at once, so the
    number in flight stays at ``window`` until the tail. Latency is start to finish
    of each operation; ``ops_per_s`` is the throughput.
    """
    if warmup:
        run_in_flight(start, finish, warmup, window)
    pending: Deque[Tuple[float, T]] = collections.deque()
    latencies: List[float] = []
    started = 0
    cpu0 = cpu_sample(helper_pids)
    wall0 = time.perf_counter()
    try:
        while len(latencies) < total:
            while started < total and len(pending) < window:
                pending.append((time.perf_counter(), start()))
                started += 1
            t0, handle = pending.popleft()
            finish(handle)
            latencies.append(time.perf_counter() - t0)
    finally:
        for _unused, handle in pending:  # only after an error: do not leave work behind
            try:
                finish(handle)
            except Exception:
                pass
    wall = time.perf_counter() - wall0
    return summarize(latencies, wall, cpu0, cpu_sample(helper_pids), window)


# -- bytes on the wire -----------------------------------------------------------------
@dataclass(frozen=True)
class WireCount:
    """Traffic through one interface (as seen from the controller's side of the link)."""

    to_host_bytes: int
    from_host_bytes: int
    to_host_packets: int
    from_host_packets: int

    @property
    def total_bytes(self) -> int:
        return self.to_host_bytes + self.from_host_bytes

    @property
    def total_packets(self) -> int:
        return self.to_host_packets + self.from_host_packets

    def __add__(self, other: "WireCount") -> "WireCount":
        return WireCount(
            self.to_host_bytes + other.to_host_bytes,
            self.from_host_bytes + other.from_host_bytes,
            self.to_host_packets + other.to_host_packets,
            self.from_host_packets + other.from_host_packets,
        )

    def __sub__(self, other: "WireCount") -> "WireCount":
        return WireCount(
            self.to_host_bytes - other.to_host_bytes,
            self.from_host_bytes - other.from_host_bytes,
            self.to_host_packets - other.to_host_packets,
            self.from_host_packets - other.from_host_packets,
        )

    def to_json(self) -> Dict[str, int]:
        data = asdict(self)
        data["total_bytes"] = self.total_bytes
        data["total_packets"] = self.total_packets
        return data


class WireMeter:
    """Reads the counters of the controller-side end of a host's veth pair.

    That end lives in the root namespace: what it transmits goes to the host, what
    it receives comes from it. Counts include Ethernet, IP and TCP headers; packet
    counts are socket buffers as the veth saw them (segmentation offload may merge
    several wire-sized segments into one).
    """

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.base = Path("/sys/class/net") / interface / "statistics"
        if not self.base.is_dir():
            raise FileNotFoundError(f"no interface {interface} in this network namespace")

    def _read(self, name: str) -> int:
        return int((self.base / name).read_text())

    def read(self) -> WireCount:
        return WireCount(
            to_host_bytes=self._read("tx_bytes"),
            from_host_bytes=self._read("rx_bytes"),
            to_host_packets=self._read("tx_packets"),
            from_host_packets=self._read("rx_packets"),
        )

    def read_settled(self, quiet_s: float, limit_s: float = 5.0) -> WireCount:
        """Counters once nothing has moved for ``quiet_s`` (late FINs and ACKs included)."""
        deadline = time.monotonic() + limit_s
        last = self.read()
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = self.read()
            if now == last:
                return now
            last = now
        return last


def median_wire(counts: Iterable[WireCount]) -> WireCount:
    """Field-wise median of several counts (each field on its own)."""
    items = list(counts)
    return WireCount(
        int(statistics.median(c.to_host_bytes for c in items)),
        int(statistics.median(c.from_host_bytes for c in items)),
        int(statistics.median(c.to_host_packets for c in items)),
        int(statistics.median(c.from_host_packets for c in items)),
    )
