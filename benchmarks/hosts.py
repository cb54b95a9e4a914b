"""Host-count benchmark: how wall time, controller CPU and controller memory grow with hosts.

Usage (as root, after ``scripts/setup``)::

    .venv/bin/python -m benchmarks.hosts [--quick] [--hosts 1,10,30,100,300] [--tasks 100]
        [--forks 50] [--repeat 1] [--variants vanilla_pipelining,ns.mitogen,...]
        [--max-vanilla-hosts 30] [--no-bytecode] [--timeout 30] [--out benchmarks/results/hosts.json]
        [--perf DIR] [--split-cpus]

``--no-bytecode`` runs every variant as in an execution environment: ``PYTHONDONTWRITEBYTECODE=1``
and a read-only copy of the installed collection without ``__pycache__`` (our code then
comes from its private code cache; ansible-core's own bytecode is read as installed);
without it, bytecode is cached under a private ``PYTHONPYCACHEPREFIX``. ``--timeout``
sets ``ANSIBLE_TIMEOUT`` for every variant (300 hosts starting on 2 cores).

``--perf DIR`` records each run machine-wide with ``perf record`` (the supervisor's sampling
and the targets included); ``benchmarks.perf_split`` says which process spent it.

``--split-cpus`` runs the controller (the supervisor, the playbook and every process it
starts: workers, multiplexer, ssh) on CPU 0 and the testbed's targets (each host's sshd
and what it starts: sessions, interpreters, commands) on the other CPUs, as if the
targets were other machines; every variant gets the same one CPU for its controller.
Without it, targets and controller share every CPU, and a run that is CPU-bound pays for
the targets' work too (which the floor, running nothing on them, does not).

``--quick`` checks the harness itself: 1 and 2 hosts, 5 tasks, written to
``hosts-quick.json``. One testbed of the largest host count (no added latency) serves
every run. Each run plays ``--tasks`` separate ``command: hostname`` tasks on the first
N hosts with ``--forks`` forks (the same for every variant), under:

* ``vanilla_pipelining``: ``ansible.builtin.linear`` + ``ansible.builtin.ssh``, pipelining
  on, ControlPersist (only up to ``--max-vanilla-hosts``: it is the slow one);
* ``ns.mitogen``: ``ns.mitogen.linear`` (hosts switched to ``ns.mitogen.ssh``);
* ``ns.mitogen.ssh``: ``ansible.builtin.linear`` with ``ansible_connection=ns.mitogen.ssh``;
* ``floor``: the same play with every task a ``debug`` (no connection): Ansible's own cost;
* ``ns.mitogen.ssh+preload`` (only when named): ``ns.mitogen.ssh`` with the
  ``ns.mitogen.preload`` callback enabled (our plugin loaded in the main process);
* ``ns.mitogen_2mux`` (only when named): ``ns.mitogen.linear`` with two multiplexers
  (``MITOGEN_CPU_COUNT=2``).

Per run, through ``benchmarks.supervise`` (which also counts what outlives the
playbook: the multiplexer and its ssh processes, ControlPersist masters): wall time,
controller CPU (user + system of every controller process), and controller memory:
every 0.2 s the RSS and the PSS of every descendant of the supervisor (the playbook
process, its workers, the multiplexer, the ssh clients) are summed; the table gives
the peak of each sum. RSS counts the pages forked workers share with their parent once
per process (what ``ps`` adds up); PSS divides each shared page among its sharers (what
the machine really spends). Cost per host = (run - the same variant on 1 host) / (N - 1)
where 1 host was measured, else run / N. Ratios compare ns.mitogen with
vanilla_pipelining (where it ran) and with the floor.

A failed run (exit status, a failed or unreachable host) stops the benchmark with its
output; no number is reported from it. Results: the tables on stdout, ``--out`` (JSON,
every run) and the Markdown next to it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ansible import ANSIBLE_PLAYBOOK, BenchError, Runner, Variant, parse_recap  # noqa: E402
from benchmarks.harness import exit_cleanly_on_signals, log, read_only_copy, writable_again  # noqa: E402
from benchmarks.report import cpu_ticks, run_info  # noqa: E402
from tests.testbed import Testbed  # noqa: E402
from tests.testbed.fixtures import unsupported_reason  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "hosts.json"
SAMPLE_S = 0.2
BUILTIN = {"ANSIBLE_STRATEGY": "ansible.builtin.linear"}
VARIANTS = (
    Variant("vanilla_pipelining", {**BUILTIN, "ANSIBLE_PIPELINING": "True"}, "built-in linear + ssh, pipelining, ControlPersist"),
    Variant("ns.mitogen", {"ANSIBLE_STRATEGY": "ns.mitogen.linear"}, "ns.mitogen.linear"),
    Variant("ns.mitogen.ssh", {**BUILTIN, "ANSIBLE_TRANSPORT": "ns.mitogen.ssh"}, "built-in linear + ns.mitogen.ssh"),
    Variant("floor", BUILTIN, "all-debug twin, no connection", floor=True),
    Variant(
        "ns.mitogen.ssh+preload",
        {**BUILTIN, "ANSIBLE_TRANSPORT": "ns.mitogen.ssh", "ANSIBLE_CALLBACKS_ENABLED": "ns.mitogen.preload"},
        "built-in linear + ns.mitogen.ssh + the ns.mitogen.preload callback",
    ),
    # not run by default: for deciding cpu_count's default (--variants ns.mitogen,ns.mitogen_2mux)
    Variant("ns.mitogen_2mux", {"ANSIBLE_STRATEGY": "ns.mitogen.linear", "MITOGEN_CPU_COUNT": "2"}, "ns.mitogen.linear, 2 muxes"),
)
DEFAULT_VARIANTS = ("vanilla_pipelining", "ns.mitogen", "ns.mitogen.ssh", "floor")
COLUMNS = (
    "Hosts",
    "Variant",
    "Wall",
    "Controller CPU",
    "Peak RSS (sum)",
    "Peak PSS (sum)",
    "Per host: wall / CPU / PSS",
    "ns.mitogen vs this: wall / CPU / PSS",
)


# -- memory -----------------------------------------------------------------------------
def _children_map() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fp:
                ppid = int(fp.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _descendants(pid: int) -> List[int]:
    kids, found, todo = _children_map(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _rss_pss_kib(pid: int) -> Tuple[int, int]:
    rss = pss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as fp:
            for line in fp:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


class MemorySampler:
    """Peak of the summed RSS and PSS of every descendant of ``root`` (not ``root`` itself)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            pids = _descendants(self.root)
            sums = [_rss_pss_kib(p) for p in pids]
            self.peak_rss_kib = max(self.peak_rss_kib, sum(r for r, _p in sums))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(p for _r, p in sums))
            self.peak_processes = max(self.peak_processes, len(pids))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- runs -------------------------------------------------------------------------------
def playbook_text(tasks: int, floor: bool) -> str:
    action = "ansible.builtin.debug: msg=hostname" if floor else "ansible.builtin.command: hostname"
    lines = ["- name: hosts benchmark", "  hosts: all", "  gather_facts: false", "  tasks:"]
    for n in range(1, tasks + 1):
        lines += ["    - name: hostname %d" % n, "      %s" % action]
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    hosts: int
    variant: str
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    peak_pss_kib: int
    peak_processes: int

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


class HostsRunner(Runner):
    """``benchmarks.ansible.Runner`` with a generated play, a fork count and memory sampling."""

    def __init__(
        self,
        tb: Testbed,
        work: Path,
        tasks: int,
        forks: int,
        no_bytecode: bool = False,
        timeout: Optional[int] = None,
        perf: Optional[Path] = None,
        split_cpus: bool = False,
    ) -> None:
        pycache = work / "pycache"
        super().__init__(tb, work, pycache, work / "unused-blob")
        self.tasks = tasks
        self.forks = forks
        self.timeout = timeout
        self.perf = perf
        self.cpus = _split_cpus() if split_cpus else None  # (controller's, targets')
        self.read_only: Optional[Path] = None
        if no_bytecode:
            # As in an execution environment: a read-only collection without bytecode, and
            # PYTHONDONTWRITEBYTECODE (ansible-core's own bytecode, in site-packages, is read).
            installed = ROOT / ".build" / "installed"  # scripts/setup's ansible-galaxy install of the collection
            self.read_only = read_only_copy(installed, work / "read-only-collections")
        self.playbooks = {floor: work / ("play-%s.yml" % ("floor" if floor else "hostname")) for floor in (False, True)}
        for floor, path in self.playbooks.items():
            path.write_text(playbook_text(tasks, floor))

    def env(self, variant: Variant, run_dir: Path) -> Dict[str, str]:
        env = super().env(variant, run_dir)
        if self.read_only is not None:
            env.pop("PYTHONPYCACHEPREFIX", None)
            env.update(PYTHONDONTWRITEBYTECODE="1", ANSIBLE_COLLECTIONS_PATH=str(self.read_only))
        if self.timeout is not None:
            env["ANSIBLE_TIMEOUT"] = str(self.timeout)
        return env

    def close(self) -> None:
        if self.read_only is not None:
            writable_again(self.read_only)

    def measure(self, hosts: int, variant: Variant) -> Result:
        self._count += 1
        targets = self.hosts(hosts)
        self.reset_targets(targets)
        if self.cpus is not None:
            for host in targets:  # what sshd starts from now on inherits it
                for pid in (host.sshd_pid, getattr(host.relay_proc, "pid", None)):
                    if pid is not None:
                        os.sched_setaffinity(pid, self.cpus[1])
        run_dir = self.work / ("r%03d" % self._count)
        run_dir.mkdir(parents=True)
        command = [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(self.inventory(hosts)),
            "-f",
            str(self.forks),
            str(self.playbooks[variant.floor]),
        ]
        result_path, log_path = run_dir / "result.json", run_dir / "output.log"
        supervisor = [sys.executable, "-m", "benchmarks.supervise", "--result", str(result_path), "--log", str(log_path)]
        supervisor += ["--cwd", str(run_dir), "--close-control-masters", str(run_dir / "cp"), "--", *command]
        if self.perf is not None:  # the whole machine: the targets share it
            self.perf.mkdir(parents=True, exist_ok=True)
            data = self.perf / ("%s-h%d-t%d-r%03d.data" % (variant.name, hosts, self.tasks, self._count))
            supervisor = ["perf", "record", "-q", "-a", "-e", "cpu-clock", "-o", str(data), "--", *supervisor]
        cpus = self.cpus[0] if self.cpus is not None else None
        proc = subprocess.Popen(
            supervisor,
            cwd=ROOT,
            env=self.env(variant, run_dir),
            start_new_session=True,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        sampler = MemorySampler(proc.pid)
        try:
            status = proc.wait()
        finally:
            sampler.stop()
        output = log_path.read_text(errors="replace") if log_path.exists() else ""
        supervised: Dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {"error": "no result"}
        if status != 0 or "error" in supervised or supervised.get("rc") != 0:
            raise BenchError("%d hosts, %s failed (%s):\n%s" % (hosts, variant.name, supervised.get("error"), output[-6000:]))
        recap = parse_recap(output)
        for host in targets:
            stats = recap.get(host.name) or {}
            if stats.get("failed", 1) or stats.get("unreachable", 1) or not stats.get("ok"):
                raise BenchError("%d hosts, %s: host %s recap %s\n%s" % (hosts, variant.name, host.name, stats, output[-6000:]))
        return Result(
            hosts,
            variant.name,
            supervised["wall_s"],
            supervised["cpu_s"],
            sampler.peak_rss_kib,
            sampler.peak_pss_kib,
            sampler.peak_processes,
        )


def _split_cpus() -> Tuple[Set[int], Set[int]]:
    """CPU 0 for the controller, the others for the targets (``--split-cpus``)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise BenchError("--split-cpus needs at least 2 CPUs, this process may use %d" % len(cpus))
    return {cpus[0]}, set(cpus[1:])


# -- tables -----------------------------------------------------------------------------
def _median(results: Sequence[Result], attr: str) -> float:
    return statistics.median(float(getattr(r, attr)) for r in results)


def _mib(kib: float) -> str:
    return "%.0f MiB" % (kib / 1024) if kib >= 10240 else "%.1f MiB" % (kib / 1024)


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return "x%.2f" % (a / b) if a is not None and b else "-"


def table(results: Sequence[Result]) -> List[List[str]]:
    """One row per (hosts, variant): medians, cost per host, and ns.mitogen's ratios."""
    cells: Dict[Tuple[int, str], Dict[str, float]] = {}
    for key in sorted({(r.hosts, r.variant) for r in results}):
        same = [r for r in results if (r.hosts, r.variant) == key]
        cells[key] = {a: _median(same, a) for a in ("wall_s", "cpu_s", "peak_rss_kib", "peak_pss_kib")}
    rows = []
    order = [v.name for v in VARIANTS]
    for hosts, variant in sorted(cells, key=lambda k: (k[0], order.index(k[1]))):
        c = cells[(hosts, variant)]
        one = cells.get((1, variant))
        if hosts > 1 and one is not None:
            per = {a: (c[a] - one[a]) / (hosts - 1) for a in c}
        else:
            per = {a: c[a] / hosts for a in c}
        mine = cells.get((hosts, "ns.mitogen"))
        versus = "-"
        if mine is not None and variant != "ns.mitogen":
            versus = " / ".join(_ratio(mine[a], c[a]) for a in ("wall_s", "cpu_s", "peak_pss_kib"))
        rows.append(
            [
                str(hosts),
                variant,
                "%.1f s" % c["wall_s"],
                "%.1f s" % c["cpu_s"],
                _mib(c["peak_rss_kib"]),
                _mib(c["peak_pss_kib"]),
                "%.2f s / %.2f s / %s" % (per["wall_s"], per["cpu_s"], _mib(per["peak_pss_kib"])),
                versus,
            ]
        )
    return rows


def text_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in (COLUMNS, *rows)]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def markdown(rows: Sequence[Sequence[str]], info: Mapping[str, Any], command: str, tasks: int, forks: int) -> str:
    out = [
        "# Host-count benchmark",
        "",
        "`%s` (%s, %s cores, %d tasks of `command: hostname` per host, %d forks)."
        % (command, info["date"], info["machine"]["cores"], tasks, forks),
        "Per host: (N hosts - 1 host) / (N - 1) for the same variant. Ratios: ns.mitogen's value / the row's.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# -- command line -----------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hosts", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="check the harness: 1 and 2 hosts, 5 tasks")
    parser.add_argument("--hosts", default="1,10,30,100,300", help="host counts, comma-separated")
    parser.add_argument("--tasks", type=int, default=100, help="command: hostname tasks per host (default 100)")
    parser.add_argument("--forks", type=int, default=50, help="ansible-playbook -f for every variant (default 50)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (default 1)")
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, of: %s" % ", ".join(v.name for v in VARIANTS)
    )
    parser.add_argument("--max-vanilla-hosts", type=int, default=30, help="vanilla_pipelining only up to this many hosts")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/hosts[-quick].json)")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="as in an execution environment: PYTHONDONTWRITEBYTECODE=1 and a read-only copy of the collection",
    )
    parser.add_argument("--timeout", type=int, help="ANSIBLE_TIMEOUT for every variant (default: Ansible's, 10 s)")
    parser.add_argument(
        "--perf", type=Path, help="record each run's CPU, machine-wide, into DIR (read with benchmarks.perf_split)"
    )
    parser.add_argument(
        "--split-cpus", action="store_true", help="the controller on CPU 0, the targets on the others (as other machines)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.tasks = "1,2", 5
    args.host_counts = sorted({int(x) for x in args.hosts.split(",") if x.strip()})
    known = {v.name: v for v in VARIANTS}
    unknown = [x for x in args.variants.split(",") if x not in known]
    if unknown:
        parser.error("unknown variants %s (known: %s)" % (unknown, ", ".join(known)))
    args.variant_list = [known[x] for x in args.variants.split(",")]
    if args.out is None:
        args.out = DEFAULT_OUT.with_name("hosts-quick.json") if args.quick else DEFAULT_OUT
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    reason = unsupported_reason()
    if reason is not None:
        print("cannot run: %s" % reason, file=sys.stderr)
        return 2
    exit_cleanly_on_signals()
    started, ticks, clock = datetime.datetime.now(datetime.timezone.utc), cpu_ticks(), time.monotonic()
    work = Path("/var/tmp") / ("nsm-bench-hosts-%d" % os.getpid())
    results: List[Result] = []
    log("bringing up %d hosts" % max(args.host_counts))
    with Testbed(hosts=max(args.host_counts)) as tb:
        runner = HostsRunner(tb, work, args.tasks, args.forks, args.no_bytecode, args.timeout, args.perf, args.split_cpus)
        for _round in range(args.repeat):
            for hosts in args.host_counts:
                for variant in args.variant_list:
                    if variant.name == "vanilla_pipelining" and hosts > args.max_vanilla_hosts:
                        continue
                    result = runner.measure(hosts, variant)
                    log(
                        "%3d hosts %-18s wall %.1f s, CPU %.1f s, peak RSS %s, PSS %s"
                        % (hosts, variant.name, result.wall_s, result.cpu_s, _mib(result.peak_rss_kib), _mib(result.peak_pss_kib))
                    )
                    results.append(result)
        runner.close()
    shutil.rmtree(work, ignore_errors=True)
    rows = table(results)
    print(text_table(rows))
    command = "python -m benchmarks.hosts " + " ".join(sys.argv[1:] if argv is None else argv)
    info = run_info(args.quick, time.monotonic() - clock, started, ticks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = dict(info, command=command, tasks=args.tasks, forks=args.forks, runs=[r.to_json() for r in results], table=rows)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(markdown(rows, info, command.strip(), args.tasks, args.forks))
    log("results: %s and %s" % (args.out, md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
