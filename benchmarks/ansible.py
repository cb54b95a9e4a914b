"""Ansible-level benchmark: vanilla Ansible, ns.mitogen and the floor, side by side.

Usage (as root, after ``scripts/setup``)::

    .venv/bin/python -m benchmarks.ansible [--quick] [--rtt 0,20] [--repeat 3]
        [--workloads hostname_100,...] [--variants ns.mitogen,floor,...] [--big-mib 2048]
        [--out benchmarks/results/ansible.json]

For each round-trip time it brings up a testbed of 10 sshd hosts (``--rtt 20``: 20 ms
through the testbed's user-space relay), and runs every workload (playbooks in
``benchmarks/playbooks/``) under every variant, interleaved, ``--repeat`` times:

* ``vanilla``: ``ansible.builtin.linear`` + ``ansible.builtin.ssh``, pipelining off,
  Ansible's default ``ssh_args`` (``-C``, ``ControlMaster=auto``, ``ControlPersist=60s``);
* ``vanilla_pipelining``: the same with pipelining on;
* ``ns.mitogen``: ``ANSIBLE_STRATEGY=ns.mitogen.linear`` (hosts switched to
  ``ns.mitogen.ssh``: one persistent interpreter per target account);
* ``floor``: the workload's twin playbook with every task a ``debug`` and no fact
  gathering, so no connection at all: Ansible's own per-task cost.

Each run is one ``ansible-playbook`` under ``benchmarks.supervise`` (a child
subreaper), which times it and adds the CPU of what it leaves behind: the
ControlPersist masters (closed with ``ssh -O exit`` right after the run) or the
ns.mitogen multiplexer and its ssh processes (which exit on their own). Bytes and
packets are the hosts' veth counters, read once the link is quiet before and after
(teardown included). Target state (``/tmp/nsm-bench`` and ``~/.ansible`` of the
login and of root) is removed before every run. A run that fails (exit status,
failed or unreachable host, missing multiplexer report) stops the benchmark with
its output; no number is ever reported from a failed run.

Round trips: ns.mitogen's runs record each task's link round trips per host
(``NS_MITOGEN_ROUND_TRIPS``: the worker's calls, puts and fetches, and the module
requests the target sent across the link); the table gives their mean per task, the
JSON that mean per task type too (``round_trips``, from a run's file by
``round_trips_of``). Vanilla's are not counted (its ssh hides them).

Results: the table on stdout, ``--out`` (JSON, every run) and the Markdown table
next to it; a run without ``--quick`` also refreshes benchmarks/README.md's ``ansible``
section. See ``benchmarks/README.md`` for what the numbers mean and the caveats.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ansible_results import (  # noqa: E402
    COLUMNS,
    RunResult,
    Summary,
    measurement,
    round_trips_of,
)
from benchmarks.harness import WireCount, WireMeter, exit_cleanly_on_signals, log  # noqa: E402
from benchmarks.report import (  # noqa: E402
    Measurement,
    all_rows,
    cpu_ticks,
    fmt_bytes,
    fmt_s,
    run_info,
    text_table,
    write_results,
)
from tests.testbed import Host, Testbed  # noqa: E402
from tests.testbed.fixtures import unsupported_reason  # noqa: E402

PLAYBOOKS = ROOT / "benchmarks" / "playbooks"
COLLECTIONS = ROOT / ".build" / "collections"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
TARGET_PYTHON = "/usr/bin/python3"
TARGET_DIR = "nsm-bench"  # /tmp/nsm-bench on the targets: everything the plays write
TESTBED_HOSTS = 10
PLAYBOOK_TIMEOUT = 1800.0
BLOB_SIZE = 1 << 20
MUX_REPORT_WAIT = 10.0
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ansible.json"


class BenchError(RuntimeError):
    """A run failed; its numbers must not be used."""


# -- what is measured ------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str
    playbook: str  # in PLAYBOOKS
    floor_playbook: str  # its all-debug twin
    hosts: int
    doc: str
    in_default: bool = True  # run when --workloads is not given

    @property
    def label(self) -> str:
        return "%s (%d host%s)" % (self.name, self.hosts, "" if self.hosts == 1 else "s")


@dataclass(frozen=True)
class Variant:
    name: str
    env: Mapping[str, str]
    doc: str
    floor: bool = False


WORKLOADS = (
    Workload("hostname_100", "hostname_100.yml", "hostname_100_floor.yml", 1, "100 separate `command: hostname` tasks, no facts"),
    Workload(
        "realistic_30",
        "realistic_30.yml",
        "realistic_30_floor.yml",
        1,
        "facts, files, copies (one of 1 MiB), template, lineinfile, stat, command/shell, become, handler, 5-item loop",
    ),
    Workload("hostname_100_x10", "hostname_100.yml", "hostname_100_floor.yml", 10, "hostname_100 on 10 hosts, default forks (5)"),
    Workload(
        "async_20",
        "async_20.yml",
        "async_20_floor.yml",
        1,
        "20 async round trips: `command: hostname` with poll 0, then `async_status` until done (no delay)",
    ),
    Workload(
        "copy_big",
        "copy_big.yml",
        "copy_big_floor.yml",
        1,
        "one `copy` of a large incompressible file (`--big-mib`, 2048 by default)",
        in_default=False,
    ),
)
DEFAULT_WORKLOADS = tuple(w for w in WORKLOADS if w.in_default)

BUILTIN = {"ANSIBLE_STRATEGY": "ansible.builtin.linear"}
VARIANTS = (
    Variant(
        "vanilla", {**BUILTIN, "ANSIBLE_PIPELINING": "False"}, "ansible.builtin.linear + ssh, pipelining off, ControlPersist"
    ),
    Variant(
        "vanilla_pipelining",
        {**BUILTIN, "ANSIBLE_PIPELINING": "True"},
        "ansible.builtin.linear + ssh, pipelining on, ControlPersist",
    ),
    Variant("ns.mitogen", {"ANSIBLE_STRATEGY": "ns.mitogen.linear"}, "ns.mitogen.linear (hosts switched to ns.mitogen.ssh)"),
    Variant("floor", BUILTIN, "the all-debug twin playbook, no connection", floor=True),
)

# --quick leaves out the slowest runs (about 4 minutes each here): vanilla on 10 hosts.
QUICK_SKIP = frozenset({("hostname_100_x10", "vanilla"), ("hostname_100_x10", "vanilla_pipelining")})


@dataclass(frozen=True)
class Config:
    quick: bool
    rtts: Tuple[float, ...]
    repeat: int
    workloads: Tuple[Workload, ...]
    variants: Tuple[Variant, ...]
    skipped: FrozenSet[Tuple[str, str]] = frozenset()
    big_mib: int = 2048  # copy_big's file

    def variants_for(self, workload: Workload) -> List[Variant]:
        return [v for v in self.variants if (workload.name, v.name) not in self.skipped]


# -- playbooks -------------------------------------------------------------------------
def hostname_playbook(floor: bool) -> str:
    """hostname_100 (100 separate tasks, not a loop) or its all-debug twin."""
    what = "debug twin of hostname_100.yml (no connection)" if floor else "100 separate `command: hostname` tasks"
    lines = [
        "# Generated by benchmarks/ansible.py (hostname_playbook); do not edit.",
        "# %s." % what,
        "- name: %s" % ("hostname_100_floor" if floor else "hostname_100"),
        "  hosts: all",
        "  gather_facts: false",
        "  tasks:",
    ]
    action = "ansible.builtin.debug: msg=hostname" if floor else "ansible.builtin.command: hostname"
    for n in range(1, 101):
        lines += ["    - name: hostname %d" % n, "      %s" % action]
    return "\n".join(lines) + "\n"


def write_generated_playbooks() -> None:
    """(Re)write the generated playbooks; they are checked in, so normally unchanged."""
    for name, floor in (("hostname_100.yml", False), ("hostname_100_floor.yml", True)):
        path = PLAYBOOKS / name
        text = hostname_playbook(floor)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def write_big(path: Path, mib: int) -> None:
    """The file copy_big copies: ``mib`` MiB of os.urandom (incompressible), 64 MiB at a time."""
    with path.open("wb") as fp:
        left = mib << 20
        while left:
            chunk = min(left, 64 << 20)
            fp.write(os.urandom(chunk))
            left -= chunk
    path.chmod(0o644)


def write_blob(path: Path) -> None:
    """The 1 MiB file realistic_30 copies: fixed pseudo-random bytes (incompressible)."""
    path.write_bytes(random.Random(20261124).randbytes(BLOB_SIZE))
    path.chmod(0o644)


def write_inventory(tb: Testbed, hosts: Sequence[Host], path: Path) -> Path:
    lines = ["[bench]"] + ["%s ansible_host=%s" % (h.name, h.address) for h in hosts]
    lines += [
        "[bench:vars]",
        "ansible_user=%s" % tb.users.sudo.name,
        "ansible_ssh_private_key_file=%s" % tb.key,
        "ansible_python_interpreter=%s" % TARGET_PYTHON,
        "ansible_ssh_common_args=-o UserKnownHostsFile=%s" % tb.known_hosts,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


RECAP_RE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", re.M)


def parse_recap(output: str) -> Dict[str, Dict[str, int]]:
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))} for m in RECAP_RE.finditer(output)}


def read_mux_reports(path: Path) -> List[Dict[str, Any]]:
    """The multiplexer's rusage lines (it writes one as it exits)."""
    deadline = time.monotonic() + MUX_REPORT_WAIT
    while True:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if lines:
                return lines
        if time.monotonic() > deadline:
            return []
        time.sleep(0.1)


class Runner:
    """Runs playbooks against one testbed, one at a time, measured."""

    def __init__(self, tb: Testbed, work: Path, pycache: Path, blob: Path, big: Optional[Path] = None) -> None:
        self.tb = tb
        self.work = work
        self.pycache = pycache
        self.blob = blob
        self.big = big
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "ansible.cfg"
        self.config.write_text("# empty: only the environment configures these runs\n")
        self.rtt_ms = tb.rtt_ms
        self.quiet_s = max(0.1, 4 * self.rtt_ms / 1000)
        self._inventories: Dict[int, Path] = {}
        self._count = 0

    def hosts(self, n: int) -> List[Host]:
        return [self.tb["h%d" % i] for i in range(1, n + 1)]

    def inventory(self, n: int) -> Path:
        if n not in self._inventories:
            self._inventories[n] = write_inventory(self.tb, self.hosts(n), self.work / ("hosts-%d.ini" % n))
        return self._inventories[n]

    def reset_targets(self, hosts: Sequence[Host]) -> None:
        """Remove what the plays (and Ansible) wrote; as root, through the controller's view."""
        for host in hosts:
            for path in (
                host.tmp_dir / TARGET_DIR,
                host.user_home(self.tb.users.sudo) / ".ansible",
                host.root_home_dir / ".ansible",
            ):
                if path.exists():
                    shutil.rmtree(path)

    def env(self, variant: Variant, run_dir: Path) -> Dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "NS_MITOGEN_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            ANSIBLE_CONFIG=str(self.config),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_HOME=str(run_dir / "home"),
            ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(run_dir / "cp"),  # not derived from ANSIBLE_HOME
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            NS_MITOGEN_MUX_RUSAGE=str(run_dir / "mux-rusage.jsonl"),
            NS_MITOGEN_ROUND_TRIPS=str(run_dir / "round-trips.jsonl"),
            PYTHONPYCACHEPREFIX=str(self.pycache),  # bytecode cached, outside the source tree
        )
        env.update(variant.env)
        return env

    def run(self, workload: Workload, variant: Variant) -> RunResult:
        """One measured ``ansible-playbook`` run; raises ``BenchError`` unless it fully succeeded."""
        self._count += 1
        hosts = self.hosts(workload.hosts)
        self.reset_targets(hosts)
        # short: ssh's ControlPath (in run_dir/cp) must fit in a Unix socket address
        run_dir = self.work / ("r%03d" % self._count)
        run_dir.mkdir(parents=True)
        (run_dir / "what").write_text("%s %s %g ms\n" % (workload.name, variant.name, self.rtt_ms))
        playbook = PLAYBOOKS / (workload.floor_playbook if variant.floor else workload.playbook)
        command = [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(self.inventory(workload.hosts)),
            str(playbook),
            "-e",
            "bench_blob=%s" % self.blob,
        ]
        if self.big is not None:
            command += ["-e", "bench_big=%s" % self.big]
        result_path, log_path = run_dir / "result.json", run_dir / "output.log"
        supervisor = [sys.executable, "-m", "benchmarks.supervise", "--result", str(result_path), "--log", str(log_path)]
        supervisor += ["--cwd", str(run_dir), "--close-control-masters", str(run_dir / "cp"), "--", *command]
        meters = [WireMeter(h.link.outer_if) for h in hosts]
        before = [m.read_settled(self.quiet_s) for m in meters]
        status = self._supervise(supervisor, self.env(variant, run_dir))
        after = [m.read_settled(self.quiet_s) for m in meters]
        output = log_path.read_text(errors="replace") if log_path.exists() else ""
        supervised: Dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {"error": "no result"}
        try:
            recap, mux_cpu = self._check(variant, hosts, status, supervised, output, run_dir)
        except BenchError as exc:
            kept = Path(tempfile.mkstemp(prefix="nsm-bench-ansible-failed-", suffix=".log")[1])
            kept.write_text(output)
            raise BenchError(
                "%s, %s, %g ms: %s\ncommand: %s\nfull output kept in %s; its end:\n%s"
                % (workload.name, variant.name, self.rtt_ms, exc, shlex.join(command), kept, output[-12000:])
            ) from None
        first = recap[hosts[0].name]
        per_host = {h.name: a - b for h, a, b in zip(hosts, after, before)}
        return RunResult(
            wall_s=supervised["wall_s"],
            cpu_s=supervised["cpu_s"],
            tasks_per_host=first["ok"] + first.get("skipped", 0),
            wire=sum(per_host.values(), WireCount(0, 0, 0, 0)),
            wire_per_host=per_host,
            supervise=supervised,
            mux_reported_cpu_s=mux_cpu,
            recap=recap,
            round_trips=round_trips_of(run_dir / "round-trips.jsonl"),
        )

    @staticmethod
    def _supervise(argv: List[str], env: Dict[str, str]) -> int:
        """Run the supervisor (its own process group, killed whole if it hangs)."""
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        try:
            return proc.wait(PLAYBOOK_TIMEOUT)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    @staticmethod
    def _check(
        variant: Variant, hosts: Sequence[Host], status: int, supervised: Dict[str, Any], output: str, run_dir: Path
    ) -> Tuple[Dict[str, Dict[str, int]], Optional[float]]:
        """The run's recap and the multiplexer's own CPU report, if it fully succeeded."""
        if status != 0 or "error" in supervised:
            raise BenchError("supervisor failed (%s): %s" % (status, supervised.get("error")))
        if supervised["rc"] != 0:
            raise BenchError("ansible-playbook exited with status %d" % supervised["rc"])
        recap = parse_recap(output)
        for host in hosts:
            stats = recap.get(host.name)
            if stats is None or stats.get("failed", 1) or stats.get("unreachable", 1) or not stats.get("ok"):
                raise BenchError("host %s: recap %s" % (host.name, stats))
        if variant.name != "ns.mitogen":
            return recap, None
        reports = read_mux_reports(run_dir / "mux-rusage.jsonl")
        if not reports:
            raise BenchError("the ns.mitogen multiplexer wrote no rusage line (did the strategy run at all?)")
        if supervised["control_masters_closed"]:
            log("  warning: the ns.mitogen run left ssh ControlMasters: some tasks used the built-in ssh")
        return recap, sum(r["cpu_s"] for r in reports)


# -- running it all ----------------------------------------------------------------------
def rotated(items: Sequence[Variant], k: int) -> List[Variant]:
    """Run order for repetition k: rotated, so no variant always runs first or last."""
    k %= max(1, len(items))
    return list(items[k:]) + list(items[:k])


def warm_up_variants(variants: Sequence[Variant]) -> List[Variant]:
    """The variants whose warm-up compiles every controller module the runs use.

    The bytecode cache is shared: vanilla runs the same controller code as
    vanilla_pipelining, and realistic_30 has a debug task, like the floor.
    """
    names = {v.name for v in variants}
    chosen = [v for v in variants if not (v.name == "vanilla" and "vanilla_pipelining" in names)]
    return [v for v in chosen if not v.floor] or chosen


def warm_up(runner: Runner, cfg: Config) -> None:
    """Untimed realistic_30 runs: fill the bytecode cache and prove the variants work."""
    realistic = next(w for w in WORKLOADS if w.name == "realistic_30")
    for variant in warm_up_variants(cfg.variants):
        log("warm-up: realistic_30, %s" % variant.name)
        runner.run(realistic, variant)


def bench_rtt(
    cfg: Config, rtt: float, work: Path, pycache: Path, blob: Path, first: bool, big: Optional[Path] = None
) -> List[Measurement]:
    hosts = max(w.hosts for w in cfg.workloads)
    log("starting testbed: %d hosts, %g ms" % (hosts, rtt))
    out: List[Measurement] = []
    with Testbed(hosts=hosts, rtt_ms=rtt) as tb:
        runner = Runner(tb, work / ("rtt-%g" % rtt), pycache, blob, big)
        if first:
            warm_up(runner, cfg)
        for workload in cfg.workloads:
            variants = cfg.variants_for(workload)
            results: Dict[str, List[RunResult]] = {v.name: [] for v in variants}
            for rep in range(cfg.repeat):
                for variant in rotated(variants, rep):
                    r = runner.run(workload, variant)
                    results[variant.name].append(r)
                    log(
                        "%s, %g ms, %s, run %d/%d: %s wall, %s CPU, %s"
                        % (
                            workload.name,
                            rtt,
                            variant.name,
                            rep + 1,
                            cfg.repeat,
                            fmt_s(r.wall_s),
                            fmt_s(r.cpu_s),
                            fmt_bytes(r.wire.total_bytes),
                        )
                    )
            out.append(measurement(workload, rtt, {name: Summary(runs) for name, runs in results.items()}))
        log("tearing the testbed down")
    return out


def run(cfg: Config) -> List[Measurement]:
    write_generated_playbooks()
    measurements: List[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="nsm-bench-ansible-") as tmp:
        work = Path(tmp)
        blob = work / "blob.bin"
        write_blob(blob)
        big = None
        if any(w.name == "copy_big" for w in cfg.workloads):
            big = work / "big.bin"
            log("writing %d MiB of random bytes for copy_big" % cfg.big_mib)
            write_big(big, cfg.big_mib)
        pycache = work / "pycache"
        for i, rtt in enumerate(cfg.rtts):
            measurements += bench_rtt(cfg, rtt, work, pycache, blob, first=i == 0, big=big)
    order = [w.name for w in WORKLOADS]
    return sorted(measurements, key=lambda m: (order.index(m.data["workload"]), m.rtt_ms))


def notes(cfg: Config) -> str:
    lines = [
        "Medians of %d run%s per cell (wall: `ansible-playbook` start to exit; per task: wall ÷ tasks in the recap)."
        % (cfg.repeat, "" if cfg.repeat == 1 else "s"),
        "Controller CPU: `ansible-playbook` with its workers and ssh clients, plus what it leaves"
        " behind (ControlPersist masters; the ns.mitogen multiplexer and its ssh). Bytes and"
        " packets: the hosts' veth, both directions, headers included (up = to the hosts).",
        "Ratio rows: of the medians above; *paired*: the median over repetitions of the ratio"
        " of the two variants' runs in one repetition (run one after the other, in an order"
        " rotated per repetition), which a drift in the machine's speed over the cell skews less.",
        "Variants: " + "; ".join("`%s`: %s" % (v.name, v.doc) for v in cfg.variants) + ".",
    ]
    skipped = sorted(cfg.skipped)
    if skipped:
        lines.append("Not run%s: %s." % (" (--quick)" if cfg.quick else "", ", ".join("%s on %s" % (v, w) for w, v in skipped)))
    return "\n".join("* " + line for line in lines)


def command_line(argv: Sequence[str]) -> str:
    exe = Path(sys.executable)
    shown = os.path.relpath(exe, ROOT) if ROOT in exe.parents else str(exe)
    return " ".join([shown, "-m", "benchmarks.ansible", *map(shlex.quote, argv)])


def software() -> Dict[str, str]:
    out = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": os.devnull},
        check=False,
    )
    return {"ansible_core": (out.stdout.splitlines() or ["?"])[0]}


def parse_list(text: str, known: Sequence[str], what: str) -> List[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for name in names:
        if name not in known:
            raise SystemExit("unknown %s %r (known: %s)" % (what, name, ", ".join(known)))
    return names


def parse_args(argv: Sequence[str]) -> Tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ansible", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 run per cell, no vanilla variants on 10 hosts")
    parser.add_argument("--rtt", default="0,20", help="round-trip times in ms, comma-separated (default 0,20)")
    parser.add_argument("--repeat", type=int, help="runs per cell (default 3, 1 with --quick)")
    parser.add_argument(
        "--workloads",
        default=",".join(w.name for w in DEFAULT_WORKLOADS),
        help="comma-separated (default: all but %s)" % ",".join(w.name for w in WORKLOADS if not w.in_default),
    )
    parser.add_argument("--big-mib", type=int, default=2048, help="size of copy_big's file in MiB (default 2048)")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (the Markdown table goes next to it)")
    args = parser.parse_args(list(argv))
    workloads = parse_list(args.workloads, [w.name for w in WORKLOADS], "workload")
    variants = parse_list(args.variants, [v.name for v in VARIANTS], "variant")
    try:
        rtts = tuple(float(x) for x in args.rtt.split(",") if x.strip())
    except ValueError:
        parser.error("--rtt wants numbers, e.g. 0,20")
    cfg = Config(
        quick=args.quick,
        rtts=rtts,
        repeat=args.repeat or (1 if args.quick else 3),
        workloads=tuple(w for w in WORKLOADS if w.name in workloads),
        variants=tuple(v for v in VARIANTS if v.name in variants),
        skipped=QUICK_SKIP if args.quick else frozenset(),
        big_mib=args.big_mib,
    )
    if not cfg.rtts or not cfg.workloads or not cfg.variants or cfg.repeat < 1 or cfg.big_mib < 1:
        parser.error("nothing to run")
    return args, cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, cfg = parse_args(argv)
    reason = unsupported_reason()
    if reason:
        print("benchmarks.ansible: cannot run here: " + reason, file=sys.stderr)
        return 2
    exit_cleanly_on_signals()
    started = datetime.datetime.now(datetime.timezone.utc)
    t0, ticks = time.perf_counter(), cpu_ticks()
    try:
        measurements = run(cfg)
    except BenchError as exc:
        print("benchmarks.ansible: a run failed, no results written:\n%s" % exc, file=sys.stderr)
        return 1
    info = run_info(cfg.quick, time.perf_counter() - t0, started, ticks)
    info["software"].update(software())
    info["config"] = {
        "rtt_ms": list(cfg.rtts),
        "repeat": cfg.repeat,
        "workloads": {w.name: w.doc for w in cfg.workloads},
        "variants": {v.name: v.doc for v in cfg.variants},
        "skipped": sorted("%s/%s" % pair for pair in cfg.skipped),
    }
    if any(w.name == "copy_big" for w in cfg.workloads):
        info["config"]["big_mib"] = cfg.big_mib
    command = command_line(argv)
    print(text_table(all_rows(measurements), COLUMNS))
    # Only a complete run to the usual place goes into benchmarks/README.md.
    readme = not cfg.quick and args.out == DEFAULT_OUT and cfg.workloads == DEFAULT_WORKLOADS and cfg.variants == VARIANTS
    md = write_results(
        args.out, measurements, info, name="ansible", command=command, columns=COLUMNS, notes=notes(cfg), readme=readme
    )
    print("\nwrote %s and %s (%.0f s)" % (args.out, md, info["duration_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
