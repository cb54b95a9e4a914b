"""ns.mitogen core against plain OpenSSH, side by side, on the real SSH testbed.

Usage (as root, after ``scripts/setup``)::

    .venv/bin/python -m benchmarks.core [--quick] [--out benchmarks/results/core.json]

Brings up its own testbed with two hosts, ``near`` (no added latency) and ``far``
(50 ms round trip through the testbed's user-space latency relay), measures, prints
the table, and writes the JSON record (``--out``) and the Markdown table next to it
(same name, ``.md``). The testbed is always torn down, also on Ctrl-C or SIGTERM.

Every measurement runs ns.mitogen and its OpenSSH baseline in the same run, against
the same host, login (``nsm-key``), key and known_hosts; see each ``measure_*``
docstring for what is measured and why the baseline is fair, and
``benchmarks/README.md`` for the caveats.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / ".build" / "collections", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Context, Session  # noqa: E402
from benchmarks import remote  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    Stats,
    WireCount,
    WireMeter,
    child_pids,
    exit_cleanly_on_signals,
    log,
    median_wire,
    run_in_flight,
    time_calls,
)
from benchmarks.openssh import ControlMaster, OpenSsh, reap, run_command, spawn  # noqa: E402
from benchmarks.report import (  # noqa: E402
    Measurement,
    Row,
    all_rows,
    cpu_ticks,
    fmt_bytes,
    fmt_ms,
    fmt_rate,
    fmt_s,
    higher_is_better,
    lower_is_better,
    run_info,
    text_table,
    write_results,
)
from tests.testbed import Host, Testbed  # noqa: E402
from tests.testbed.fixtures import unsupported_reason  # noqa: E402

REMOTE_MODULE = "benchmarks.remote"
TARGET_PYTHON = "/usr/bin/python3"
HOSTS = {"near": 0.0, "far": 50.0}  # host name -> added round-trip time (ms)
CALL_TIMEOUT = 60.0
CPU_BASIS = 500  # controller CPU is reported per this many calls
MiB = 1 << 20


@dataclass(frozen=True)
class Config:
    """How much to measure. ``FULL`` takes about 3-4 minutes here, ``QUICK`` about 1."""

    quick: bool = False
    local_calls: int = 2000  # sequential no-op calls, local context
    local_baseline_calls: int = 1000  # sequential `true` processes
    ssh_calls: Dict[float, int] = field(default_factory=lambda: {0.0: 500, 50.0: 100})
    controlmaster_calls: Dict[float, int] = field(default_factory=lambda: {0.0: 500, 50.0: 100})
    per_command_calls: Dict[float, int] = field(default_factory=lambda: {0.0: 100, 50.0: 10})
    windows: Sequence[int] = (64, 256)
    in_flight_calls: int = 10000  # ns.mitogen calls per in-flight measurement
    in_flight_commands: int = 500  # baseline commands per in-flight measurement
    startup_reps: Dict[float, int] = field(default_factory=lambda: {0.0: 10, 50.0: 5})
    file_mib: int = 256
    file_reps: int = 2


FULL = Config()
QUICK = replace(
    FULL,
    quick=True,
    local_calls=500,
    local_baseline_calls=200,
    ssh_calls={0.0: 200, 50.0: 20},
    controlmaster_calls={0.0: 100, 50.0: 20},
    per_command_calls={0.0: 15, 50.0: 3},
    in_flight_calls=2000,
    in_flight_commands=150,
    startup_reps={0.0: 3, 50.0: 2},
    file_mib=64,
    file_reps=1,
)


# -- the target host ------------------------------------------------------------------
@dataclass
class Target:
    """One testbed host as both sides see it: ns.mitogen spec, OpenSSH argv, veth."""

    tb: Testbed
    host: Host

    @property
    def rtt_ms(self) -> float:
        return self.host.rtt_ms

    @property
    def openssh(self) -> OpenSsh:
        return OpenSsh(self.tb, self.host, self.tb.users.key)

    @property
    def wire(self) -> WireMeter:
        if self.host.link.outer_ns is not None:
            raise RuntimeError(f"{self.host.name} is not directly reachable from the controller")
        return WireMeter(self.host.link.outer_if)

    def connect(self, session: Session) -> Context:
        """An ssh context on this host, with the same login, key and files as the baseline."""
        return session.ssh(
            self.host.address,
            port=self.host.port,
            username=self.tb.users.key.name,
            identity_file=str(self.tb.key),
            known_hosts_file=str(self.tb.known_hosts),
            python=TARGET_PYTHON,
            ssh_args=["-F", "/dev/null"],  # like the baseline: no system ssh_config
        )


def mitogen_call(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.call(remote.noop, timeout=CALL_TIMEOUT)


def finish_call(recv: Any) -> None:
    try:
        recv.get(CALL_TIMEOUT).decode()
    finally:
        recv.close()


def cpu_per_basis(stats: Stats) -> float:
    """Controller CPU seconds per ``CPU_BASIS`` calls (scaled when fewer ran)."""
    return stats.cpu_total_s * CPU_BASIS / stats.n


def latency_cell(stats: Stats) -> str:
    return "%s / %s" % (fmt_ms(stats.median_ms), fmt_ms(stats.p90_ms))


def cpu_cell(stats: Stats) -> str:
    scaled = "" if stats.n == CPU_BASIS else " (from %d calls)" % stats.n
    return fmt_s(cpu_per_basis(stats)) + scaled


# -- 1. round trip of a no-op call ------------------------------------------------------
def measure_round_trip_local(cfg: Config, ctx: Context) -> Measurement:
    """Round trip of a no-op call to a local context, one after the other.

    ns.mitogen: ``ctx.call(noop)`` to an interpreter already running on this machine.
    Baseline: fork/exec of ``true``, the cheapest way to run anything in a fresh
    process (what a per-task subprocess costs at least, before any Python starts).
    CPU counts this process, the context's interpreter / the ``true`` processes.
    """
    pid = ctx.call(os.getpid)
    mitogen = time_calls(mitogen_call(ctx), cfg.local_calls, warmup=50, helper_pids=[pid])
    baseline = time_calls(lambda: run_command(["true"]), cfg.local_baseline_calls, warmup=20)
    kind = "fork/exec `true`"
    rows = [
        Row(
            "No-op round trip, local (median / p90)",
            0,
            latency_cell(mitogen),
            latency_cell(baseline),
            kind,
            lower_is_better(mitogen.median_ms, baseline.median_ms),
        ),
        Row(
            "CPU per %d no-op calls, local" % CPU_BASIS,
            0,
            cpu_cell(mitogen),
            cpu_cell(baseline),
            kind,
            lower_is_better(cpu_per_basis(mitogen), cpu_per_basis(baseline), "less", "more"),
        ),
    ]
    data = {"mitogen": mitogen.to_json(), "fork_exec_true": baseline.to_json()}
    return Measurement("round_trip.local", measure_round_trip_local.__doc__ or "", 0, data, rows)


def measure_round_trip_ssh(cfg: Config, target: Target, ctx: Context, ssh_pids: Sequence[int], cm: ControlMaster) -> Measurement:
    """Round trip of a no-op call over ssh, one after the other, on an idle link.

    ns.mitogen: ``ctx.call(noop)`` on an established ssh context. Baselines, same
    host, login, key and options: ``ssh host true`` with a fresh connection each time
    (Ansible without ControlPersist pays this per task), and ``ssh host true`` over an
    established ControlMaster (ControlPersist: no handshake, but a new ssh client, a
    new session channel and a shell per command). CPU is controller-side: this
    process plus the ssh client carrying the ns.mitogen stream; for the baselines the
    ssh clients (reaped children) plus the ControlMaster process.
    """
    rtt = target.rtt_ms
    mitogen = time_calls(mitogen_call(ctx), cfg.ssh_calls[rtt], warmup=20, helper_pids=ssh_pids)
    fresh = time_calls(lambda: run_command(target.openssh.argv("true")), cfg.per_command_calls[rtt], warmup=1)
    muxed = time_calls(lambda: run_command(cm.argv("true")), cfg.controlmaster_calls[rtt], warmup=3, helper_pids=[cm.pid])
    cm.require()
    rows = []
    for kind, base in (("`ssh host true`, new connection each", fresh), ("`ssh host true` over ControlMaster", muxed)):
        rows.append(
            Row(
                "No-op round trip, ssh (median / p90)",
                rtt,
                latency_cell(mitogen),
                latency_cell(base),
                kind,
                lower_is_better(mitogen.median_ms, base.median_ms),
            )
        )
    for kind, base in (("`ssh host true`, new connection each", fresh), ("`ssh host true` over ControlMaster", muxed)):
        rows.append(
            Row(
                "Controller CPU per %d no-op calls, ssh" % CPU_BASIS,
                rtt,
                cpu_cell(mitogen),
                cpu_cell(base),
                kind,
                lower_is_better(cpu_per_basis(mitogen), cpu_per_basis(base), "less", "more"),
            )
        )
    data = {"mitogen": mitogen.to_json(), "ssh_per_command": fresh.to_json(), "ssh_controlmaster": muxed.to_json()}
    return Measurement("round_trip.ssh.%gms" % rtt, measure_round_trip_ssh.__doc__ or "", rtt, data, rows)


# -- 2. many calls in flight ------------------------------------------------------------
def measure_in_flight(
    cfg: Config,
    label: str,
    ctx: Context,
    baseline_argv: List[str],
    baseline_kind: str,
    window: int,
    mitogen_pids: Sequence[int] = (),
    baseline_pids: Sequence[int] = (),
) -> Measurement:
    """Throughput with ``window`` no-op calls in flight at once, one context.

    ns.mitogen: ``ctx.call_async(noop)`` kept ``window`` deep (each reply collected
    is replaced by a new call at once). Baseline: the same number of baseline
    commands running at once (``true`` processes for the local context, ``ssh host
    true`` over one ControlMaster for ssh: the fastest way plain OpenSSH has to run
    many commands on one host, since fresh connections would each pay a handshake).
    """
    mitogen = run_in_flight(
        lambda: ctx.call_async(remote.noop), finish_call, cfg.in_flight_calls, window, warmup=window, helper_pids=mitogen_pids
    )
    baseline = run_in_flight(
        lambda: spawn(baseline_argv), reap, cfg.in_flight_commands, window, warmup=min(window, 32), helper_pids=baseline_pids
    )
    rows = [
        Row(
            "Calls/s, %d in flight, %s" % (window, label),
            0,
            fmt_rate(mitogen.ops_per_s, "calls/s"),
            fmt_rate(baseline.ops_per_s, "cmds/s"),
            baseline_kind,
            higher_is_better(mitogen.ops_per_s, baseline.ops_per_s),
        ),
    ]
    data = {"window": window, "mitogen": mitogen.to_json(), "baseline": baseline.to_json(), "baseline_kind": baseline_kind}
    return Measurement("in_flight.%s.%d" % (label, window), measure_in_flight.__doc__ or "", 0, data, rows)


# -- 3. from nothing to the first call -------------------------------------------------
class WireRecorder:
    """Marks the veth counters before an operation and records the difference after it."""

    def __init__(self, meter: WireMeter, quiet_s: float) -> None:
        self.meter = meter
        self.quiet_s = quiet_s
        self.counts: List[WireCount] = []
        self._mark: Optional[WireCount] = None

    def mark(self) -> None:
        self._mark = self.meter.read_settled(self.quiet_s)

    def record(self) -> None:
        if self._mark is None:
            raise RuntimeError("record() without mark()")
        self.counts.append(self.meter.read_settled(self.quiet_s) - self._mark)
        self._mark = None

    def last(self, n: int) -> List[WireCount]:
        return self.counts[-n:]


def start_mitogen(target: Target, connect_times: List[float]) -> Session:
    """A fresh Session, an ssh context, and its first call answered (os.getpid).

    Appends the time ``s.ssh()`` took to ``connect_times`` (the rest is the call).
    """
    t0 = time.perf_counter()
    session = Session()
    try:
        ctx = target.connect(session)
        connect_times.append(time.perf_counter() - t0)
        ctx.call(os.getpid, timeout=CALL_TIMEOUT)
    except BaseException:
        session.close()
        raise
    return session


def wire_cell(count: WireCount) -> str:
    return "%s (%s up / %s down), %d pkts" % (
        fmt_bytes(count.total_bytes),
        fmt_bytes(count.to_host_bytes),
        fmt_bytes(count.from_host_bytes),
        count.total_packets,
    )


def measure_startup(cfg: Config, target: Target) -> Measurement:
    """Time, controller CPU and bytes on the wire from nothing to the first answer.

    ns.mitogen: a fresh ``Session``, ``s.ssh(...)`` (ssh handshake, interpreter
    start, the compressed core sent over) and a first ``call(os.getpid)`` (a stdlib
    function, so no module is served); the time stops at the answer, and the bytes
    and CPU also cover ``close()``. Baseline: ``ssh host /usr/bin/python3 -c pass``,
    i.e. the same handshake and the same interpreter started, with no payload; its
    time includes the connection teardown (the command's exit). Bytes are both
    directions of the host's veth in the root namespace, headers included, counted
    once the link is quiet after each run.
    """
    reps = cfg.startup_reps[target.rtt_ms]
    quiet = max(0.05, 2.5 * target.rtt_ms / 1000)
    wire_m = WireRecorder(target.wire, quiet)

    def close_and_record(session: Session) -> None:
        session.close()
        wire_m.record()

    connect_times: List[float] = []
    mitogen = time_calls(lambda: start_mitogen(target, connect_times), reps, warmup=1, before=wire_m.mark, after=close_and_record)
    wire_b = WireRecorder(target.wire, quiet)
    argv = target.openssh.argv(TARGET_PYTHON + " -c pass")
    baseline = time_calls(lambda: run_command(argv), reps, warmup=1, before=wire_b.mark, after=lambda _: wire_b.record())
    m_wire, b_wire = median_wire(wire_m.last(reps)), median_wire(wire_b.last(reps))
    kind = "`ssh host python3 -c pass`"
    rtt = target.rtt_ms
    rows = [
        Row(
            "Nothing → first call answered (median)",
            rtt,
            fmt_ms(mitogen.median_ms),
            fmt_ms(baseline.median_ms),
            kind,
            lower_is_better(mitogen.median_ms, baseline.median_ms),
        ),
        Row(
            "Bytes on the wire, nothing → first call",
            rtt,
            wire_cell(m_wire),
            wire_cell(b_wire),
            kind,
            lower_is_better(m_wire.total_bytes, b_wire.total_bytes, "fewer", "more"),
        ),
        Row(
            "Controller CPU per start",
            rtt,
            fmt_s(mitogen.cpu_total_s / mitogen.n),
            fmt_s(baseline.cpu_total_s / baseline.n),
            kind,
            lower_is_better(mitogen.cpu_total_s, baseline.cpu_total_s, "less", "more"),
        ),
    ]
    data = {
        "mitogen": dict(
            mitogen.to_json(),
            connect_median_ms=1000 * statistics.median(connect_times[-reps:]),
            wire=[c.to_json() for c in wire_m.last(reps)],
            wire_median=m_wire.to_json(),
        ),
        "ssh_python_pass": dict(baseline.to_json(), wire=[c.to_json() for c in wire_b.last(reps)], wire_median=b_wire.to_json()),
    }
    return Measurement("startup.%gms" % rtt, measure_startup.__doc__ or "", rtt, data, rows)


# -- 4. file streaming --------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def make_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fp:
        for _n in range(size // (4 * MiB)):
            chunk = os.urandom(4 * MiB)
            digest.update(chunk)
            fp.write(chunk)
    path.chmod(0o644)
    return digest.hexdigest()


class Destinations:
    """A fresh destination path for every transfer, all checked and removed at the end."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.directory = directory
        self.stem = stem
        self.paths: List[Path] = []

    def next(self) -> str:
        path = self.directory / ("%s-%d.bin" % (self.stem, len(self.paths)))
        self.paths.append(path)
        return str(path)

    def verify_and_remove(self, sha256: str) -> None:
        for path in self.paths:
            got = sha256_file(path)
            if got != sha256:
                raise RuntimeError(f"{path}: SHA-256 {got}, expected {sha256}")
            path.unlink()
        self.paths.clear()


def time_transfer(
    cfg: Config, target: Target, fn: Callable[[str], Any], dests: Destinations, sha256: str, helper_pids: Sequence[int]
) -> Dict[str, Any]:
    """Time ``fn(dest)`` ``file_reps`` times, checking every copy; stats, MiB/s, wire bytes."""
    wire = WireRecorder(target.wire, max(0.05, 2.5 * target.rtt_ms / 1000))
    stats = time_calls(
        lambda: fn(dests.next()), cfg.file_reps, before=wire.mark, after=lambda _: wire.record(), helper_pids=helper_pids
    )
    dests.verify_and_remove(sha256)
    size = cfg.file_mib * MiB
    return dict(
        stats.to_json(),
        mib_per_s=size / MiB / (stats.median_ms / 1000),
        sha256_verified=True,
        wire=[c.to_json() for c in wire.last(cfg.file_reps)],
    )


def measure_files(
    cfg: Config,
    target: Target,
    session: Session,
    ctx: Context,
    ssh_pids: Sequence[int],
    cm: ControlMaster,
    work: Path,
    source: Path,
    sha256: str,
) -> Measurement:
    """Streaming a random file to and from the host: MiB/s, SHA-256 checked after each copy.

    ns.mitogen: ``s.push_file`` / ``s.fetch_file`` on an established ssh context
    (chunked, windowed, atomically renamed, verified with SHA-256 at the receiver).
    Baseline: ``scp -o Compression=no`` of the same file over the same link, with the
    same key and known_hosts, multiplexed over an established ControlMaster, so that
    neither side pays a handshake inside the timing (scp speaks SFTP in OpenSSH 9).
    Both ends are in /dev/shm (tmpfs) so that the disk is not what is measured:
    ns.mitogen's fsync is then nearly free, as is scp's lack of one. CPU is
    controller-side: this process and the ns.mitogen ssh client; scp, its ssh client
    and the ControlMaster.
    """
    rtt = target.rtt_ms
    remote_file = str(work / "remote-source.bin")
    results: Dict[str, Dict[str, Any]] = {}

    def push_scp(dest: str) -> None:
        run_command(cm.scp_argv(str(source), target.openssh.remote_path(dest)))

    def fetch_scp(dest: str) -> None:
        run_command(cm.scp_argv(target.openssh.remote_path(remote_file), dest))

    plan = [
        ("push", "mitogen", lambda d: session.push_file(ctx, str(source), d), ssh_pids),
        ("push", "scp", push_scp, [cm.pid]),
        ("fetch", "mitogen", lambda d: session.fetch_file(ctx, remote_file, d), ssh_pids),
        ("fetch", "scp", fetch_scp, [cm.pid]),
    ]
    session.push_file(ctx, str(source), remote_file)  # the file both sides fetch (untimed)
    if sha256_file(Path(remote_file)) != sha256:
        raise RuntimeError("the remote copy of the source file is corrupt")
    for direction, side, fn, pids in plan:
        log("  %s %d MiB, %s, %g ms" % (direction, cfg.file_mib, side, rtt))
        results["%s_%s" % (direction, side)] = time_transfer(
            cfg, target, fn, Destinations(work, f"{direction}-{side}"), sha256, pids
        )
    cm.require()
    rows = []
    for direction, title in (("push", "Push %d MiB file (to host)"), ("fetch", "Fetch %d MiB file (from host)")):
        m, b = results[direction + "_mitogen"], results[direction + "_scp"]
        rows.append(
            Row(
                title % cfg.file_mib,
                rtt,
                fmt_rate(m["mib_per_s"], "MiB/s"),
                fmt_rate(b["mib_per_s"], "MiB/s"),
                "`scp -o Compression=no` over ControlMaster",
                higher_is_better(m["mib_per_s"], b["mib_per_s"]),
            )
        )
    data = dict(results, file_mib=cfg.file_mib)
    return Measurement("files.%gms" % rtt, measure_files.__doc__ or "", rtt, data, rows)


# -- running it all ---------------------------------------------------------------------
def bench_target(cfg: Config, target: Target, work: Path, source: Path, sha256: str) -> List[Measurement]:
    """Every measurement for one host (and the local ones alongside the 0 ms host)."""
    out: List[Measurement] = []
    rtt = target.rtt_ms
    with Session(allow_imports=[REMOTE_MODULE]) as session, ControlMaster(target.openssh) as cm:
        ctx = target.connect(session)
        ssh_pids = [p for p in child_pids("ssh") if p != cm.pid]
        if rtt == 0:
            local = session.local()
            log("round trip, local")
            out.append(measure_round_trip_local(cfg, local))
        log("round trip, ssh, %g ms" % rtt)
        out.append(measure_round_trip_ssh(cfg, target, ctx, ssh_pids, cm))
        if rtt == 0:
            local_pid = local.call(os.getpid)
            for window in cfg.windows:
                log("%d in flight, local and ssh" % window)
                out.append(
                    measure_in_flight(cfg, "local", local, ["true"], "`true` processes at once", window, mitogen_pids=[local_pid])
                )
                out.append(
                    measure_in_flight(
                        cfg,
                        "ssh",
                        ctx,
                        cm.argv("true"),
                        "`ssh host true` at once over ControlMaster",
                        window,
                        mitogen_pids=ssh_pids,
                        baseline_pids=[cm.pid],
                    )
                )
                cm.require()
        log("files, %g ms" % rtt)
        out.append(measure_files(cfg, target, session, ctx, ssh_pids, cm, work, source, sha256))
    log("nothing → first call, %g ms" % rtt)
    out.append(measure_startup(cfg, target))
    return out


def order_for_table(measurements: List[Measurement]) -> List[Measurement]:
    """Group rows by kind (round trip, in flight, start, files), 0 ms before 50 ms."""
    kinds = ["round_trip", "in_flight", "startup", "files"]
    return sorted(measurements, key=lambda m: (kinds.index(m.key.split(".")[0]), m.rtt_ms))


def shared_work_dir(owner_uid: int, owner_gid: int) -> "tempfile.TemporaryDirectory[str]":
    """A tmpfs directory both the controller and the target login can write."""
    tmp = tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None, prefix="nsm-bench-")
    os.chown(tmp.name, owner_uid, owner_gid)
    os.chmod(tmp.name, 0o755)
    return tmp


def run(cfg: Config) -> List[Measurement]:
    """Bring the testbed up, measure everything, tear it down (always)."""
    log("starting testbed (hosts %s)" % ", ".join("%s: %g ms" % kv for kv in HOSTS.items()))
    measurements: List[Measurement] = []
    with Testbed(hosts=list(HOSTS), rtt_ms=0, host_rtt_ms=HOSTS) as tb:
        user = tb.users.key
        with shared_work_dir(user.uid, user.gid) as work_name:
            work = Path(work_name)
            source = work / "source.bin"
            log("writing %d MiB random file" % cfg.file_mib)
            sha256 = make_random_file(source, cfg.file_mib * MiB)
            for name in HOSTS:
                measurements += bench_target(cfg, Target(tb, tb[name]), work, source, sha256)
        log("tearing the testbed down")
    return order_for_table(measurements)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and a 64 MiB file (about a minute)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "core.json",
        help="JSON output (the Markdown table goes next to it, .md)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    reason = unsupported_reason()
    if reason:
        print("benchmarks.core: cannot run here: " + reason, file=sys.stderr)
        return 2
    exit_cleanly_on_signals()
    cfg = QUICK if args.quick else FULL
    started = datetime.datetime.now(datetime.timezone.utc)
    t0, ticks = time.perf_counter(), cpu_ticks()
    measurements = run(cfg)
    info = run_info(cfg.quick, time.perf_counter() - t0, started, ticks)
    print(text_table(all_rows(measurements)))
    md = write_results(args.out, measurements, info)
    print("\nwrote %s and %s (%.0f s)" % (args.out, md, info["duration_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
