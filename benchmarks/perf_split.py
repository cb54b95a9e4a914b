"""Where a run's CPU went, process by process: a system-wide ``perf record`` split by role.

Usage (as root; ``perf`` must be installed)::

    .venv/bin/python -m benchmarks.hosts --hosts 1,10 --repeat 1 --perf DIR ...
    .venv/bin/python -m benchmarks.perf_split DIR/*.data

``benchmarks.hosts --perf DIR`` runs each measured playbook under ``perf record -a -e
cpu-clock`` (every CPU, 4,000 samples a second per CPU): the controller *and* the testbed's
targets, which share this machine. This script reads each file's samples and its fork,
exec and exit events, rebuilds the process tree and adds up the CPU of each role:

* ``main``: the ``ansible-playbook`` process (the strategy, results, callbacks);
* ``workers``: the processes it forks per host and task that run no other program, with
  their count and CPU each (the median and the mean);
* ``mux``: the multiplexer: the forked Python process whose own forks run ``ssh``;
* ``ssh``: the ssh clients; ``targets``: ``sshd`` and everything under it (the target's
  interpreter, the commands modules run);
* ``other``: the rest of the machine, idle excluded (the supervisor, the kernel's threads).

The ``controller`` column adds up main, workers, mux and ssh: what a controller runs
when its targets are other machines.

``--timeline S`` prints each role's CPU per S seconds of the run (where a first task
waits for the multiplexer, say); ``--symbols ROLE`` where a role's CPU went.

What it cannot see: time waiting (a sample is CPU only). A role's CPU divided by the
tasks run is what one task costs that role, on whichever core it ran.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

_FORK = re.compile(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)")
_EXEC = re.compile(r"PERF_RECORD_COMM exec: (.*):(\d+)/(\d+)$")
_EXIT = re.compile(r"PERF_RECORD_EXIT\((\d+):(\d+)\)")
_SAMPLE = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\d+)\s+cpu-clock:")
_LINE_HEAD = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):")
ROLES = ("main", "workers", "mux", "ssh", "targets", "other")
#: The roles that run on the controller in a real deployment (the testbed's targets share it).
CONTROLLER = ("main", "workers", "mux", "ssh")


@dataclass
class Proc:
    pid: int
    parent: Optional[int] = None
    execs: List[str] = field(default_factory=list)
    comm: str = ""
    start: float = 0.0
    end: Optional[float] = None
    cpu_ns: int = 0


def read(path: Path) -> Dict[int, Proc]:
    """The processes of one ``perf.data`` with their CPU (ns), parents and programs."""
    return parse(_script(path))


def _script(path: Path) -> str:
    return subprocess.run(
        ["perf", "script", "-i", str(path), "--show-task-events", "-F", "comm,pid,tid,time,event,period"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout


def timeline(out: str, step: float) -> List[Tuple[float, Dict[str, float]]]:
    """CPU (ms) per role in each ``step`` seconds from the playbook's start, from ``perf script`` text."""
    procs = parse(out)
    role_of = roles(procs)
    mains = [p for p in procs.values() if "ansible-playboo" in p.execs]
    start = min(p.start for p in mains) if mains else 0.0
    slots: Dict[int, Dict[str, float]] = defaultdict(lambda: dict.fromkeys(ROLES, 0.0))
    for line in out.splitlines():
        sample = _SAMPLE.match(line)
        role = role_of.get(int(sample.group(2))) if sample else None
        if sample and role and float(sample.group(4)) >= start:
            slots[int((float(sample.group(4)) - start) / step)][role] += int(sample.group(5)) / 1e6
    return [(index * step, slots[index]) for index in sorted(slots)]


def parse(out: str) -> Dict[int, Proc]:
    """``read()`` from the text of ``perf script --show-task-events -F comm,pid,tid,time,event,period``."""
    procs: Dict[int, Proc] = {}

    def get(pid: int, comm: str = "") -> Proc:
        proc = procs.get(pid)
        if proc is None:
            proc = procs[pid] = Proc(pid, comm=comm)
        return proc

    for line in out.splitlines():
        sample = _SAMPLE.match(line)
        if sample:
            proc = get(int(sample.group(2)), sample.group(1))
            proc.cpu_ns += int(sample.group(5))
            continue
        head = _LINE_HEAD.match(line)
        when = float(head.group(4)) if head else 0.0
        fork = _FORK.search(line)
        if fork:
            child, parent = int(fork.group(1)), int(fork.group(3))
            if child != parent:  # a thread is not a process
                proc = get(child, head.group(1) if head else "")
                proc.parent, proc.start = parent, when
            continue
        execd = _EXEC.search(line)
        if execd:
            proc = get(int(execd.group(2)))
            proc.execs.append(execd.group(1))
            proc.comm = execd.group(1)
            continue
        ended = _EXIT.search(line)
        if ended and ended.group(1) == ended.group(2):
            get(int(ended.group(1))).end = when
    return procs


def roles(procs: Dict[int, Proc]) -> Dict[int, str]:
    """Each process's role (``ROLES``); the workers' are keyed by their own pid in ``workers_of``."""
    return _classify(procs)[0]


def _classify(procs: Dict[int, Proc]) -> Tuple[Dict[int, str], List[int]]:
    children: Dict[int, List[int]] = defaultdict(list)
    for proc in procs.values():
        if proc.parent is not None:
            children[proc.parent].append(proc.pid)
    role_of: Dict[int, str] = {}

    def mark(pid: int, role: str) -> None:
        role_of.setdefault(pid, role)
        for child in children.get(pid, ()):
            mark(child, role)

    # ssh clients: every process that runs ssh; targets: sshd's subtree.
    for proc in procs.values():
        if proc.comm == "ssh" or "ssh" in proc.execs:
            role_of[proc.pid] = "ssh"
    for proc in procs.values():
        if proc.comm == "sshd" and proc.pid not in role_of:
            mark(proc.pid, "targets")
    # the multiplexer: a forked, never exec'd process whose forks run ssh.
    for proc in list(procs.values()):
        if role_of.get(proc.pid) == "ssh" and proc.parent is not None:
            forker = procs.get(proc.parent)
            while forker is not None and forker.execs and forker.parent is not None:
                forker = procs.get(forker.parent)  # ssh exec'd in the forked child
            if forker is not None and not forker.execs and forker.pid not in role_of:
                mark(forker.pid, "mux")
    workers: List[int] = []
    for main in (p for p in procs.values() if "ansible-playboo" in p.execs):
        role_of[main.pid] = "main"
        for pid in children.get(main.pid, ()):
            if pid not in role_of and not procs[pid].execs:
                mark(pid, "workers")
                workers.append(pid)
    for proc in procs.values():
        if proc.pid not in role_of and proc.comm != "swapper" and proc.pid != 0:
            role_of[proc.pid] = "other"
    return role_of, workers


@dataclass
class Split:
    """One run's CPU (ms) per role, and its workers' count and CPU each."""

    ms: Dict[str, float]
    workers: int
    worker_median_ms: float
    worker_mean_ms: float


def split(procs: Dict[int, Proc]) -> Split:
    """CPU (ms) per role, and the workers' count and CPU each."""
    role_of, workers = _classify(procs)
    children: Dict[int, List[int]] = defaultdict(list)
    for proc in procs.values():
        if proc.parent is not None:
            children[proc.parent].append(proc.pid)
    each = [_subtree_ns(pid, procs, children, role_of, "workers") / 1e6 for pid in workers]
    totals: Dict[str, float] = {role: 0.0 for role in ROLES}
    for proc in procs.values():
        if proc.pid in role_of:
            totals[role_of[proc.pid]] += proc.cpu_ns / 1e6
    return Split(
        totals,
        len(each),
        statistics.median(each) if each else 0.0,
        statistics.mean(each) if each else 0.0,
    )


def symbols(path: Path, role: str, top: int) -> List[Tuple[float, str]]:
    """The ``top`` (share of the role's CPU, "dso symbol") pairs of one role's samples."""
    role_of = roles(read(path))
    out = subprocess.run(
        ["perf", "script", "-i", str(path), "-F", "pid,period,ip,sym,dso"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout
    spent: Dict[str, int] = defaultdict(int)
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[0].isdigit() or role_of.get(int(parts[0])) != role:
            continue
        rest = parts[2].split()
        # "<addr> <symbol> (<dso>)": the symbol may be [unknown] or hold spaces.
        dso = rest[-1].strip("()").rsplit("/", 1)[-1] if rest else "?"
        sym = " ".join(rest[1:-1]) if len(rest) > 2 else "?"
        sym = sym.split("+0x", 1)[0]
        spent["%s %s" % (dso, sym)] += int(parts[1])
    total = sum(spent.values()) or 1
    return sorted(((ns / total, key) for key, ns in spent.items()), reverse=True)[:top]


def _subtree_ns(pid: int, procs: Dict[int, Proc], children: Dict[int, List[int]], roles: Dict[int, str], role: str) -> int:
    total = procs[pid].cpu_ns
    for child in children.get(pid, ()):
        if roles.get(child) == role:
            total += _subtree_ns(child, procs, children, roles, role)
    return total


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_split", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("data", nargs="+", type=Path, help="perf.data files (benchmarks.hosts --perf)")
    parser.add_argument("--tasks", type=int, help="host-tasks per run, to print CPU per task (default: from the name)")
    parser.add_argument("--symbols", choices=ROLES, help="also list where that role's CPU went (shared object, symbol)")
    parser.add_argument("--top", type=int, default=25, help="symbols to list (default 25)")
    parser.add_argument("--timeline", type=float, metavar="SECONDS", help="also print CPU per role in each slice of time")
    args = parser.parse_args(argv)
    head = "%-34s %8s %8s %8s %8s %8s %8s %10s %8s  %s" % (
        ("run",) + ROLES + ("controller", "sum", "workers: n, median, mean ms")
    )
    print(head)
    for path in args.data:
        result = split(read(path))
        ms = result.ms
        tasks = args.tasks or _tasks_from_name(path.name)
        scale = 1.0 / tasks if tasks else 1.0
        cells = ["%8.2f" % (ms[role] * scale) for role in ROLES]
        print(
            "%-34s %s %10.2f %8.2f  %d, %.1f, %.1f"
            % (
                path.stem,
                " ".join(cells),
                sum(ms[role] for role in CONTROLLER) * scale,
                sum(ms.values()) * scale,
                result.workers,
                result.worker_median_ms,
                result.worker_mean_ms,
            )
        )
    print("(ms of CPU per host-task when the file name says h<hosts>-t<tasks>, else ms per run;")
    print(" controller: main + workers + mux + ssh, what a real controller runs)")
    for path in args.data if args.timeline else ():
        print("\n%s, ms of CPU per %.2f s from the playbook's start:" % (path.stem, args.timeline))
        for when, spent in timeline(_script(path), args.timeline):
            print("  %6.2f s  " % when + " ".join("%s %5.0f" % (role, spent[role]) for role in ROLES))
    for path in args.data if args.symbols else ():
        print("\n%s, %s:" % (path.stem, args.symbols))
        for share, key in symbols(path, args.symbols, args.top):
            print("  %5.1f%%  %s" % (100 * share, key))
    return 0


def _tasks_from_name(name: str) -> int:
    found = re.search(r"h(\d+)-t(\d+)", name)
    return int(found.group(1)) * int(found.group(2)) if found else 0


if __name__ == "__main__":
    sys.exit(main())
