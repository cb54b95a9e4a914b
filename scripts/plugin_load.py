# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What loading our connection plugin costs an Ansible worker under a built-in strategy.

Under a built-in strategy nothing of ours is in the main process: every worker Ansible
forks loads ``ns.mitogen.ssh`` itself. This script measures just that, away from any
play: a parent process imports what ``ansible-playbook``'s main process has loaded by
then, forks ``--runs`` children as Ansible forks workers, and each child freezes what
it inherited for the garbage collector (as ours does in a worker) and loads the plugin
class through Ansible's ``connection_loader``, timed (wall and CPU, medians). A first
child loads it and makes a connection object beforehand, so our private caches (the
code bundle, the option definitions) are filled as after any first task.

``--phases`` runs one more child with an audit hook and lists where its time went,
from Python's audit events (imports, opens, compiles, unmarshalling), summed by phase
(the hook slows it; the medians are of the children without it). ``--baseline`` measures the
same for a throwaway collection holding a trivial connection plugin: what Ansible
itself costs to find and load any collection's connection plugin, the floor for ours.
``--no-bytecode``: ``PYTHONDONTWRITEBYTECODE=1`` and a read-only copy of the
collection, as in an execution environment. Counts nothing on a target; needs no root.

Usage: .venv/bin/python scripts/plugin_load.py [--runs 30] [--no-bytecode] [--phases] [--baseline]
       [--collections DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
BASELINE = '''
DOCUMENTATION = """
name: tiny
short_description: a connection plugin that does nothing (a baseline)
description: [Loads, connects and runs nothing.]
author: ns.mitogen contributors (@ns-mitogen)
options: {}
"""
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    transport = "nsmbaseline.tiny.tiny"

    def _connect(self):
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        return 0, b"", b""

    def put_file(self, in_path, out_path):
        pass

    def fetch_file(self, in_path, out_path):
        pass

    def close(self):
        pass
'''


def _phase(event: str, arg: str) -> str:
    """What runs from an audit event to the next one (each event is raised as its step starts)."""
    if "/ns/mitogen/" in arg or "ns.mitogen" in arg or "/nsmbaseline/" in arg:
        if event == "compile":
            return "compiling the plugin's files from source (Ansible's collection loader)"
        if event == "open" and ("bundle-" in arg or "defs-" in arg):
            return "reading our private cache (code bundle, option definitions)"
        if event == "open" and "runtime.yml" in arg:
            return "Ansible: the collection's metadata (meta/runtime.yml)"
        return "the plugin's code: finding, running its modules' bodies"
    if event == "marshal.loads":
        return "unmarshalling code (our bundle's, and any .pyc)"
    return "Ansible and the standard library (plugin lookup, other imports)"


def _inner(args: argparse.Namespace) -> int:
    """In the measuring process: a main-like parent, forking measured children."""
    import gc

    import ansible.cli.playbook  # noqa: F401 - what a main process has loaded by its first fork
    import ansible.executor.playbook_executor  # noqa: F401
    import ansible.executor.process.worker  # noqa: F401
    import ansible.executor.task_executor  # noqa: F401
    import ansible.plugins.action.command  # noqa: F401
    import ansible.plugins.connection  # noqa: F401
    import ansible.plugins.strategy.linear  # noqa: F401
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader, init_plugin_loader

    init_plugin_loader([args.collections])
    name = args.plugin

    def child(measure: bool, audit: bool) -> Dict[str, Any]:
        gc.freeze()
        if not measure:
            plugin = connection_loader.get(name, PlayContext(), None)
            plugin.close()
            return {}
        events: List[Tuple[float, str, str]] = []
        if audit:

            def hook(event: str, hook_args: Tuple[Any, ...]) -> None:
                if event in ("import", "open", "compile", "marshal.loads", "exec"):
                    arg = hook_args[1] if event == "compile" and len(hook_args) > 1 else (hook_args[0] if hook_args else "")
                    arg = getattr(arg, "co_filename", arg)
                    if isinstance(arg, (bytes, bytearray, memoryview)):  # code being unmarshalled, or a path
                        arg = "" if event == "marshal.loads" else bytes(arg).decode("utf-8", "replace")
                    events.append((time.perf_counter(), event, str(arg)[-200:]))

            sys.addaudithook(hook)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started, cpu = time.perf_counter(), time.process_time()
        connection_loader.get(name, class_only=True)
        ended, cpu = time.perf_counter(), time.process_time() - cpu
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        wall = ended - started
        phases: Dict[str, float] = {}
        other = "Ansible and the standard library (plugin lookup, other imports)"
        key, prev = other, started
        for when, event, arg in events:  # the time from one event to the next goes to the first one's phase
            phases[key] = phases.get(key, 0.0) + (when - prev)
            key, prev = _phase(event, arg), when
        phases[key] = phases.get(key, 0.0) + (ended - prev)
        return {"wall": wall * 1000, "cpu": cpu * 1000, "faults": faults, "phases": {k: v * 1000 for k, v in phases.items()}}

    results = []
    for i in range(args.runs + 1 + bool(args.phases)):  # a first to fill the caches, one more audited
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                os.write(write, json.dumps(child(measure=i > 0, audit=args.phases and i == args.runs + 1)).encode())
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as fp:
            data = fp.read()
        _pid, status = os.waitpid(pid, 0)
        if status != 0:
            return 1
        if i > 0:
            results.append(json.loads(data))
    audited = results.pop() if args.phases else None  # its times are the hook's too: not in the medians
    print(
        "%s: loading the plugin class in a fresh worker, median of %d: %.1f ms wall, %.1f ms CPU, %d page faults"
        % (
            name,
            len(results),
            statistics.median(r["wall"] for r in results),
            statistics.median(r["cpu"] for r in results),
            statistics.median(r["faults"] for r in results),
        )
    )
    if audited is not None:
        for key, ms in sorted(audited["phases"].items(), key=lambda kv: -kv[1]):
            print("  %6.2f ms  %s" % (ms, key))
        print("  (one more run, with an audit hook on every event: slower than the median above)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-bytecode", action="store_true", help="PYTHONDONTWRITEBYTECODE=1, a read-only copy")
    parser.add_argument("--phases", action="store_true", help="where the last run's time went")
    parser.add_argument("--baseline", action="store_true", help="also a trivial collection connection plugin")
    parser.add_argument("--collections", default=str(REPO / ".build" / "installed"), help="collection path (default: ours)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plugin", default="ns.mitogen.ssh", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1, not %d" % args.runs)
    if args.inner:
        return _inner(args)
    if not (Path(args.collections) / "ansible_collections" / "ns" / "mitogen").is_dir():
        parser.error("--collections %s holds no ansible_collections/ns/mitogen (scripts/setup installs it)" % args.collections)
    sys.path.insert(0, str(REPO))
    from benchmarks.harness import read_only_copy, writable_again

    work = Path(tempfile.mkdtemp(prefix="nsm-plugin-load-"))
    try:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["ANSIBLE_HOME"] = str(work / "home")
        collections = Path(args.collections)
        if args.no_bytecode:
            collections, env["PYTHONDONTWRITEBYTECODE"] = read_only_copy(collections, work / "collections"), "1"
        runs = [(str(collections), "ns.mitogen.ssh")]
        if args.baseline:
            base = work / "baseline" / "ansible_collections" / "nsmbaseline" / "tiny"
            (base / "plugins" / "connection").mkdir(parents=True)
            (base / "meta").mkdir()
            (base / "meta" / "runtime.yml").write_text('requires_ansible: ">=2.16.0"\n')
            (base / "plugins" / "connection" / "tiny.py").write_text(BASELINE)
            runs.append((str(work / "baseline"), "nsmbaseline.tiny.tiny"))
        for path, plugin in runs:
            argv = [sys.executable, __file__, "--inner", "--collections", path, "--plugin", plugin, "--runs", str(args.runs)]
            done = subprocess.run(argv + (["--phases"] if args.phases else []), env=env, check=False)
            if done.returncode:
                return done.returncode
        return 0
    finally:
        writable_again(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
