"""Command line for the testbed (benchmarks, manual debugging).

Owns argument parsing and the process life cycle of a standalone testbed::

    python -m tests.testbed up --hosts 3 --rtt-ms 50 [--private h3=h2] \\
        [--host-rtt-ms h1=10] [--state-dir DIR]
        # prints a JSON description on stdout, runs until SIGINT/SIGTERM,
        # then tears everything down
    python -m tests.testbed down --state-dir DIR
        # stops the `up` process owning DIR (SIGTERM), or tears down its
        # leftovers if that process is gone
    python -m tests.testbed cleanup
        # removes leftovers of every dead run
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from . import containers, registry
from .system import TestbedError
from .testbed import Testbed


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key or not val:
            raise TestbedError(f"{what} wants NAME=VALUE, got {value!r}")
        result[key] = val
    return result


def cmd_up(args: argparse.Namespace) -> int:
    host_rtt = {k: float(v) for k, v in _pairs(args.host_rtt_ms, "--host-rtt-ms").items()}
    tb = Testbed(
        hosts=args.hosts,
        rtt_ms=args.rtt_ms,
        host_rtt_ms=host_rtt,
        private=_pairs(args.private, "--private"),
        state_dir=args.state_dir,
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        tb.start()
        print(tb.describe_json(), flush=True)
        while not stop:
            time.sleep(0.2)
    finally:
        tb.close()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    path = Path(args.state_dir) / "run.json"
    if not path.exists():
        raise TestbedError(f"no testbed state in {args.state_dir} (no run.json)")
    record = registry.RunRecord.load(path)
    if record.alive() and record.pid != os.getpid():
        os.kill(record.pid, signal.SIGTERM)
        if not registry.wait_gone(record.pid, record.starttime, timeout=30):
            raise TestbedError(f"testbed process {record.pid} did not exit after SIGTERM")
    with registry.locked():
        further = [r for r in registry.records() if r.run_id.startswith(record.run_id + ".b")]  # > 62 hosts
        for line in [line for r in (record, *further) for line in registry.teardown(r)]:
            print(f"removed {line}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    for line in registry.cleanup_stale() + containers.cleanup_stale():
        print(f"removed {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description="SSH hosts in network namespaces")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring a testbed up and keep it until signalled")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--rtt-ms", type=float, default=0.0)
    up.add_argument("--host-rtt-ms", action="append", default=[], metavar="HOST=MS")
    up.add_argument("--private", action="append", default=[], metavar="TARGET=BASTION")
    up.add_argument("--state-dir", default=None)
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="tear down the testbed owning a state dir")
    down.add_argument("--state-dir", required=True)
    down.set_defaults(func=cmd_down)
    cleanup = sub.add_parser("cleanup", help="remove leftovers of dead runs")
    cleanup.set_defaults(func=cmd_cleanup)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
