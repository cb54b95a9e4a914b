# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-task cost of ns.mitogen in one Ansible worker process, counted, not timed.

Ansible forks a worker per host and task. Under a built-in strategy nothing of ours
is loaded before that fork, so every worker imports (and, without bytecode,
compiles) what it needs itself. This script runs a small play (``--tasks`` x
``command: hostname`` on one testbed host, ``ansible_connection: ns.mitogen.ssh``)
and, inside every worker, records:

- modules imported by the worker (all, and ours: ``ansible_collections.ns.mitogen``),
- bytes of Python source the worker compiled (all, and ours),
- CPU time of the worker (``time.process_time()`` around ``WorkerProcess.run``),

then prints the median per task (the first task, which also connects, apart).
``--profile N`` runs every worker under cProfile, adds the number of Python
function calls per worker (a CPU measure that does not depend on the machine's
load) and prints the heaviest functions of N workers. ``--no-bytecode`` runs with ``PYTHONDONTWRITEBYTECODE=1`` from a fresh,
read-only copy of the installed collection (no ``__pycache__``), as in an
execution environment. ``--target-profile`` also measures the other processes of
a task: the main process's CPU between two workers' starts (median), the
multiplexer's CPU over the whole run (``NS_MITOGEN_MUX_RUSAGE``), and every call
the target interpreter handles (``NS_MITOGEN_CALL_PROFILE``, riding on
``ansible_python_interpreter``: the core's ``_callprofile``); with ``--profile``
too, each call there runs under cProfile. ``--main-profile FILE`` writes a cProfile
of the main process (the strategy's per-task work; its workers are not in it). Needs root (the testbed); run it alone on a quiet machine
only for the CPU column - the counts do not depend on load.

Usage: .venv/bin/python scripts/worker_profile.py [--strategy ansible.builtin.linear]
       [--tasks 10] [--hosts 1] [--no-bytecode] [--profile 3 [--keep DIR]] [--target-profile] [--collections DIR]
       [--main-profile FILE]
(--collections: another installed copy, e.g. an older commit's, to compare;
--hosts N: N testbed hosts, forks = N, for the main process's work per host-task.)
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
OURS = "ansible_collections.ns.mitogen"
RECORDS_ENV = "NSM_WORKER_PROFILE_RECORDS"
PROFILE_ENV = "NSM_WORKER_PROFILE_CPROFILE"
MAIN_ENV = "NSM_WORKER_PROFILE_MAIN"  # the main process's CPU as each worker starts, a line each
MAIN_PROFILE_ENV = "NSM_WORKER_PROFILE_MAIN_CPROFILE"  # a cProfile file of the main process


def _child(argv: List[str]) -> int:
    """In the ansible-playbook process: count in every worker, then run the play."""
    counts = {"all": 0, "ours": 0}
    real_compile = builtins.compile

    def compile(source: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A001
        if isinstance(source, (str, bytes)):
            size = len(source)
            counts["all"] += size
            if "/ns/mitogen/" in str(filename) or "ns.mitogen" in str(filename):
                counts["ours"] += size
        return real_compile(source, filename, *args, **kwargs)

    builtins.compile = compile  # importlib and Ansible's collection loader both call it

    from ansible.executor.process.worker import WorkerProcess

    real_run = WorkerProcess.run
    real_start = WorkerProcess.start
    main_records = os.environ.get(MAIN_ENV)

    def start(self: Any) -> None:
        if main_records:
            with open(main_records, "a") as fp:
                fp.write("%.6f\n" % time.process_time())
        real_start(self)

    WorkerProcess.start = start  # type: ignore[method-assign]
    records = os.environ[RECORDS_ENV]
    profile_dir = os.environ.get(PROFILE_ENV)
    main_profiler = None
    if os.environ.get(MAIN_PROFILE_ENV):
        import cProfile

        main_profiler = cProfile.Profile()

    def run(self: Any) -> None:
        if main_profiler is not None:
            main_profiler.disable()  # inherited from the main process: not this worker's
        before = set(sys.modules)
        compiled = dict(counts)
        cpu = time.process_time()
        profiler = None
        if profile_dir:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        try:
            real_run(self)
        finally:
            calls = None
            if profiler is not None:
                profiler.disable()
                import pstats

                calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
                profiler.dump_stats(os.path.join(profile_dir, "%s-%d.prof" % (self._task.get_name(), os.getpid())))
            new = set(sys.modules) - before
            line = {
                "task": self._task.get_name(),
                "cpu_ms": round((time.process_time() - cpu) * 1000, 1),
                "modules": len(new),
                "our_modules": sorted(m for m in new if m.startswith(OURS)),
                "compiled": counts["all"] - compiled["all"],
                "our_compiled": counts["ours"] - compiled["ours"],
                "calls": calls,
            }
            fd = os.open(records, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(fd, (json.dumps(line) + "\n").encode())
            os.close(fd)

    WorkerProcess.run = run  # type: ignore[method-assign]
    from ansible.cli.playbook import PlaybookCLI

    sys.argv = ["ansible-playbook", *argv]
    main_profile = os.environ.get(MAIN_PROFILE_ENV)
    if main_profiler is not None:
        main_profiler.enable()
    try:
        PlaybookCLI.cli_executor(sys.argv)
    finally:
        if main_profiler is not None and main_profile:
            main_profiler.disable()
            main_profiler.dump_stats(main_profile)
    return 0


def _summary(lines: List[Dict[str, Any]]) -> str:
    def med(key: str, rows: List[Dict[str, Any]]) -> float:
        return statistics.median(r[key] if key != "our_modules" else len(r[key]) for r in rows)

    first, rest = lines[:1], lines[1:] or lines[:1]
    out = ["%-28s %8s %8s %12s %12s %8s %9s" % ("", "modules", "ours", "compiled B", "ours B", "CPU ms", "calls")]
    for label, rows in (("first task (connects)", first), ("each later task (median)", rest)):
        calls = "%9d" % med("calls", rows) if rows[0].get("calls") is not None else "%9s" % "-"
        out.append(
            "%-28s %8d %8d %12d %12d %8.1f %s"
            % (
                label,
                med("modules", rows),
                med("our_modules", rows),
                med("compiled", rows),
                med("our_compiled", rows),
                med("cpu_ms", rows),
                calls,
            )
        )
    later = {m for r in rest for m in r["our_modules"]}
    out.append("our modules a later worker imports: %s" % (", ".join(sorted(m[len(OURS) + 1 :] for m in later)) or "none"))
    return "\n".join(out)


def _others(work: Path, target_dir: Path, tasks: int) -> str:
    """The main process, the mux and the target: CPU per task (``--target-profile``)."""
    out = []
    main_cpu = [float(x) for x in (work / "main.txt").read_text().split()] if (work / "main.txt").exists() else []
    steps = [b - a for a, b in zip(main_cpu[1:], main_cpu[2:])]  # after the first task, which connects
    if steps:
        out.append("main process CPU between later workers' starts (median): %.2f ms" % (statistics.median(steps) * 1000))
    mux = work / "mux.jsonl"
    deadline = time.monotonic() + 5  # the mux writes it as it exits, after the playbook
    while not mux.exists() and time.monotonic() < deadline and main_cpu:
        time.sleep(0.1)
    if mux.exists():
        cpu = sum(json.loads(x)["cpu_s"] for x in mux.read_text().splitlines())
        out.append("mux CPU (with its ssh children), whole run: %.1f ms, %.2f ms a task" % (cpu * 1000, cpu * 1000 / tasks))
    calls: Dict[str, List[Dict[str, Any]]] = {}
    for path in sorted(target_dir.glob("calls-*.jsonl")):
        for row in path.read_text().splitlines():
            line = json.loads(row)
            calls.setdefault(line["fn"], []).append(line)
    for fn, rows in sorted(calls.items()):
        later = rows[1:] or rows
        med = {k: statistics.median(r[k] for r in later) for k in ("cpu_ms", "children_ms", "wall_ms")}
        py = " %d Python calls," % statistics.median(r["calls"] for r in later) if "calls" in later[0] else ""
        out.append(
            "target %s: %d calls; the first: CPU %.2f ms; after the first, median:%s CPU %.2f ms, children %.2f ms, wall %.2f ms"
            % (fn, len(rows), rows[0]["cpu_ms"], py, med["cpu_ms"], med["children_ms"], med["wall_ms"])
        )
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return _child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--strategy", default="ansible.builtin.linear")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=1, help="testbed hosts (a worker per host and task)")
    parser.add_argument("--no-bytecode", action="store_true", help="PYTHONDONTWRITEBYTECODE=1, read-only fresh collection")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N later workers")
    parser.add_argument("--keep", metavar="DIR", help="copy the workers' cProfile files there (with --profile)")
    parser.add_argument("--task", default="command: hostname", help="every task's action (the floor: 'debug: msg=hostname')")
    parser.add_argument("--connection", default="ns.mitogen.ssh", help="ansible_connection (the floor: ssh)")
    parser.add_argument("--target-profile", action="store_true", help="measure the main process, the mux and the target too")
    parser.add_argument("--main-profile", metavar="FILE", help="cProfile the main process (not its workers) into FILE")
    parser.add_argument("--collections", default=str(REPO / ".build" / "installed"), help="collection path (default: ours)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from benchmarks.harness import read_only_copy, writable_again
    from tests.differential import runner
    from tests.testbed import Testbed

    work = Path(tempfile.mkdtemp(prefix="nsm-worker-profile-"))
    try:
        collections = Path(args.collections)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_bytecode:
            collections = read_only_copy(collections, work / "collections")
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        play = work / "play.yml"
        tasks = "".join("    - name: t%d\n      %s\n" % (i, args.task) for i in range(args.tasks))
        play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + tasks)
        records = work / "records.jsonl"
        profile_dir = work / "prof"
        profile_dir.mkdir()
        python = runner.PYTHON
        target_dir = Path(tempfile.mkdtemp(prefix="nsm-target-profile-", dir="/var/tmp"))  # testbed hosts share /var/tmp
        os.chmod(target_dir, 0o1777)
        if args.target_profile:
            cprofile = " NS_MITOGEN_CALL_CPROFILE=1" if args.profile else ""
            python = "env NS_MITOGEN_CALL_PROFILE=%s%s %s" % (target_dir, cprofile, python)
            env[MAIN_ENV] = str(work / "main.txt")
            env["NS_MITOGEN_MUX_RUSAGE"] = str(work / "mux.jsonl")
        with Testbed(hosts=args.hosts) as tb:
            inv = work / "inventory.json"
            variant = runner.Variant("profile", args.strategy, args.connection, False, "")
            inv.write_text(
                json.dumps(runner.inventory(tb, variant, tuple("h%d" % (i + 1) for i in range(args.hosts)), python=python))
            )
            env.update(
                ANSIBLE_COLLECTIONS_PATH=str(collections),
                ANSIBLE_STRATEGY=args.strategy,
                ANSIBLE_HOME=str(work / "home"),
                ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
                ANSIBLE_CONFIG=str(work / "none.cfg"),
                ANSIBLE_DEPRECATION_WARNINGS="False",
            )
            env.setdefault("ANSIBLE_FORKS", str(max(5, args.hosts)))  # a worker per host at once
            env[RECORDS_ENV] = str(records)
            if args.main_profile:
                env[MAIN_PROFILE_ENV] = os.path.abspath(args.main_profile)
            if args.profile:
                env[PROFILE_ENV] = str(profile_dir)
            argv = [sys.executable, __file__, "--child", "-i", str(inv), str(play)]
            done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
                return done.returncode
        # a worker writes its record after sending its result: the last one may still be at it
        deadline = time.monotonic() + 10
        while len(records.read_text().splitlines()) < args.tasks * args.hosts and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [json.loads(x) for x in records.read_text().splitlines()]
        print(
            "%s, %d tasks, %s:" % (args.strategy, len(lines), "no bytecode, read-only" if args.no_bytecode else "bytecode cached")
        )
        print(_summary(lines))
        if args.target_profile:
            print(_others(work, target_dir, len(lines)))
        if args.profile:
            import pstats

            files = sorted(profile_dir.iterdir(), key=lambda p: p.stat().st_mtime)[1 : 1 + args.profile]
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                for path in files:
                    shutil.copy(path, args.keep)
            if files:
                stats = pstats.Stats(*map(str, files))
                stats.sort_stats("cumulative").print_stats(25)
        return 0
    finally:
        if args.target_profile and args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for path in target_dir.iterdir():
                shutil.copy(path, args.keep)
        shutil.rmtree(target_dir, ignore_errors=True)
        writable_again(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
