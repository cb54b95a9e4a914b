"""Connection delegation benchmark: 20 targets behind one bastion, mitogen_via beside ProxyJump.

Usage (as root, after ``scripts/setup``; needs the playbook-level ``mitogen_via``,
issue 18's plugin side, to run the ``ns.mitogen_via`` variant)::

    .venv/bin/python -m benchmarks.via [--targets 20] [--rtt 50] [--blob-mib 10]
        [--repeat 3] [--variants ns.mitogen_via,vanilla_proxyjump]
        [--out benchmarks/results/via.json]

A testbed of ``--targets`` + 1 sshd hosts: h1 is the bastion, ``--rtt`` ms from the
controller; h2.. are reachable only through it (no added latency between them).
The play is ``realistic_30`` (about 30 tasks: facts, files, a template, commands,
become, a handler) on every target, its big copy being a ``--blob-mib`` MiB file
of incompressible bytes. Variants, interleaved, ``--repeat`` times:

* ``vanilla_proxyjump``: ``ansible.builtin.linear`` + ``ansible.builtin.ssh``,
  pipelining on, ``ansible_ssh_common_args='-F <cfg> -o ProxyJump=nsm-bastion'``
  (ControlPersist as Ansible sets it);
* ``ns.mitogen_via``: ``ns.mitogen.linear``, each target with
  ``mitogen_via=bastion`` (the bastion an inventory host of its own, outside the
  play's ``--limit``): one interpreter on the bastion serves every target's
  connection, and caches module sources, module_utils and copied files for them.

Measured per run (``benchmarks.ansible.Runner``'s machinery): wall time, controller
CPU (``ansible-playbook``, workers, ssh, the multiplexer, ControlPersist masters),
and the bytes on the controller<->bastion link only (h1's veth, both directions).
The issue's targets: >= 5x fewer bytes on that link, >= 3x less wall time.
Results: the table on stdout and ``--out`` (JSON) with its Markdown table; never
benchmarks/README.md (paste a complete run there by hand, with its command line).
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ansible import (  # noqa: E402
    ANSIBLE_PLAYBOOK,
    PLAYBOOKS,
    TARGET_PYTHON,
    BenchError,
    Runner,
    RunResult,
    Variant,
    Workload,
    parse_list,
    software,
)
from benchmarks.harness import WireMeter, exit_cleanly_on_signals, log  # noqa: E402
from benchmarks.report import cpu_ticks, fmt_bytes, fmt_s, run_info  # noqa: E402
from tests.testbed import Host, Testbed  # noqa: E402
from tests.testbed.fixtures import unsupported_reason  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "via.json"
BUILTIN = {"ANSIBLE_STRATEGY": "ansible.builtin.linear", "ANSIBLE_PIPELINING": "True"}
VARIANTS = (
    Variant("vanilla_proxyjump", BUILTIN, "ansible.builtin.linear + ssh, pipelining on, ProxyJump through the bastion"),
    Variant("ns.mitogen_via", {"ANSIBLE_STRATEGY": "ns.mitogen.linear"}, "ns.mitogen.linear, mitogen_via=bastion"),
)
COLUMNS = ("Variant", "Wall", "Controller CPU", "Bytes controller<->bastion (up / down)")


def write_blob(path: Path, mib: float) -> None:
    """The file the play copies to every target: fixed pseudo-random bytes (incompressible)."""
    path.write_bytes(random.Random(20261207).randbytes(int(mib * (1 << 20))))
    path.chmod(0o644)


def write_inventories(tb: Testbed, targets: Sequence[Host], work: Path) -> Dict[str, Path]:
    """One inventory per variant: the same targets, reached through the bastion h1."""
    bastion = tb["h1"]
    user = tb.users.sudo.name
    ssh_config = work / "ssh_config"
    ssh_config.write_text(
        "Host nsm-bastion\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n"
        "  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n" % (bastion.address, bastion.port, user, tb.key, tb.known_hosts)
    )
    common = ["ansible_user=%s" % user, "ansible_python_interpreter=%s" % TARGET_PYTHON]
    key = "ansible_ssh_private_key_file=%s" % tb.key  # a controller path: not for ssh run on the bastion
    hosts = ["%s ansible_host=%s ansible_port=%d" % (h.name, h.address, h.port) for h in targets]
    vanilla = ["[targets]"] + hosts + ["[targets:vars]"] + common + [key]
    vanilla.append(
        "ansible_ssh_common_args='-F %s -o ProxyJump=nsm-bastion -o UserKnownHostsFile=%s'" % (ssh_config, tb.known_hosts)
    )
    # ns.mitogen: the bastion is an inventory host; each target's ssh runs on it, as the
    # bastion's account (whose ~/.ssh holds the testbed's key and known_hosts).
    via = ["[bastions]", "bastion ansible_host=%s ansible_port=%d" % (bastion.address, bastion.port)]
    via += ["[bastions:vars]", key, "ansible_ssh_common_args='-o UserKnownHostsFile=%s'" % tb.known_hosts]
    via += ["[targets]"] + hosts + ["[targets:vars]", "mitogen_via=bastion"]
    via += ["[all:vars]"] + common
    out = {}
    for name, lines in (("vanilla_proxyjump", vanilla), ("ns.mitogen_via", via)):
        path = work / ("hosts-%s.ini" % name)
        path.write_text("\n".join(lines) + "\n")
        out[name] = path
    return out


class ViaRunner(Runner):
    """``Runner`` with the targets behind h1, an inventory per variant, and h1's link metered."""

    def __init__(self, tb: Testbed, work: Path, pycache: Path, blob: Path, targets: int) -> None:
        super().__init__(tb, work, pycache, blob)
        self.targets = [tb["h%d" % i] for i in range(2, targets + 2)]
        self.inventories = write_inventories(tb, self.targets, work)

    def hosts(self, n: int) -> List[Host]:
        return self.targets[:n]

    def run(self, workload: Workload, variant: Variant) -> RunResult:
        self._count += 1
        hosts = self.targets
        self.reset_targets(hosts)
        run_dir = self.work / ("r%03d" % self._count)
        run_dir.mkdir(parents=True)
        command = [str(ANSIBLE_PLAYBOOK), "-i", str(self.inventories[variant.name]), "--limit", "targets"]
        command += [str(PLAYBOOKS / workload.playbook), "-e", "bench_blob=%s" % self.blob]
        command += ["-e", "bench_blob_size=%d" % self.blob.stat().st_size]
        result_path, log_path = run_dir / "result.json", run_dir / "output.log"
        supervisor = [sys.executable, "-m", "benchmarks.supervise", "--result", str(result_path), "--log", str(log_path)]
        supervisor += ["--cwd", str(run_dir), "--close-control-masters", str(run_dir / "cp"), "--", *command]
        meter = WireMeter(self.tb["h1"].link.outer_if)
        before = meter.read_settled(self.quiet_s)
        status = self._supervise(supervisor, self.env(variant, run_dir))
        after = meter.read_settled(self.quiet_s)
        output = log_path.read_text(errors="replace") if log_path.exists() else ""
        supervised: Dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {"error": "no result"}
        checked = Variant("ns.mitogen", variant.env, variant.doc) if variant.name == "ns.mitogen_via" else variant
        try:
            recap, mux_cpu = self._check(checked, hosts, status, supervised, output, run_dir)
        except BenchError as exc:
            raise BenchError(
                "%s: %s\ncommand: %s\nits output's end:\n%s" % (variant.name, exc, shlex.join(command), output[-8000:])
            ) from None
        first = recap[hosts[0].name]
        wire = after - before
        return RunResult(
            wall_s=supervised["wall_s"],
            cpu_s=supervised["cpu_s"],
            tasks_per_host=first["ok"] + first.get("skipped", 0),
            wire=wire,
            wire_per_host={"h1": wire},
            supervise=supervised,
            mux_reported_cpu_s=mux_cpu,
            recap=recap,
        )


def summarize(runs: Dict[str, List[RunResult]]) -> List[List[str]]:
    rows = []
    medians: Dict[str, Dict[str, float]] = {}
    for name, results in runs.items():
        wall = statistics.median(r.wall_s for r in results)
        cpu = statistics.median(r.cpu_s for r in results)
        up = statistics.median(r.wire.to_host_bytes for r in results)
        down = statistics.median(r.wire.from_host_bytes for r in results)
        medians[name] = {"wall": wall, "cpu": cpu, "bytes": up + down}
        rows.append([name, fmt_s(wall), fmt_s(cpu), "%s (%s / %s)" % (fmt_bytes(up + down), fmt_bytes(up), fmt_bytes(down))])
    a, b = medians.get("vanilla_proxyjump"), medians.get("ns.mitogen_via")
    if a and b:
        rows.append(
            [
                "ratio vanilla_proxyjump / ns.mitogen_via",
                "%.1fx" % (a["wall"] / b["wall"]),
                "%.1fx" % (a["cpu"] / b["cpu"]),
                "%.1fx" % (a["bytes"] / max(1.0, b["bytes"])),
            ]
        )
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.via", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--targets", type=int, default=20, help="targets behind the bastion (default 20)")
    parser.add_argument("--rtt", type=float, default=50.0, help="ms between the controller and the bastion (default 50)")
    parser.add_argument("--blob-mib", type=float, default=10.0, help="size of the copied file in MiB (default 10)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.variants = parse_list(args.variants, [v.name for v in VARIANTS], "variant")
    if args.targets < 1 or args.repeat < 1:
        parser.error("nothing to run")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    reason = unsupported_reason()
    if reason:
        print("benchmarks.via: cannot run here: " + reason, file=sys.stderr)
        return 2
    exit_cleanly_on_signals()
    started = datetime.datetime.now(datetime.timezone.utc)
    t0, ticks = time.perf_counter(), cpu_ticks()
    variants = [v for v in VARIANTS if v.name in args.variants]
    workload = Workload("realistic_30", "realistic_30.yml", "realistic_30_floor.yml", args.targets, "realistic_30")
    runs: Dict[str, List[RunResult]] = {v.name: [] for v in variants}
    private = {"h%d" % i: "h1" for i in range(2, args.targets + 2)}
    try:
        with tempfile.TemporaryDirectory(prefix="nsm-bench-via-") as tmp:
            work = Path(tmp)
            blob = work / "blob.bin"
            write_blob(blob, args.blob_mib)
            log("starting testbed: bastion at %g ms, %d targets behind it" % (args.rtt, args.targets))
            with Testbed(hosts=args.targets + 1, host_rtt_ms={"h1": args.rtt}, private=private) as tb:
                runner = ViaRunner(tb, work / "runs", work / "pycache", blob, args.targets)
                for rep in range(args.repeat):
                    for variant in variants[rep % len(variants) :] + variants[: rep % len(variants)]:
                        r = runner.run(workload, variant)
                        runs[variant.name].append(r)
                        log(
                            "%s, run %d: %s wall, %s CPU, %s"
                            % (variant.name, rep + 1, fmt_s(r.wall_s), fmt_s(r.cpu_s), fmt_bytes(r.wire.total_bytes))
                        )
    except BenchError as exc:
        print("benchmarks.via: a run failed, no results written:\n%s" % exc, file=sys.stderr)
        return 1
    rows = summarize(runs)
    cells = [list(COLUMNS)] + rows
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells))
    info = run_info(False, time.perf_counter() - t0, started, ticks)
    info["software"].update(software())
    info["config"] = {"targets": args.targets, "rtt_ms": args.rtt, "blob_mib": args.blob_mib, "repeat": args.repeat}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "info": info,
        "runs": {
            name: [{"wall_s": r.wall_s, "cpu_s": r.cpu_s, "bytes": r.wire.total_bytes} for r in rs] for name, rs in runs.items()
        },
    }
    args.out.write_text(json.dumps(data, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(
        "Made with `.venv/bin/python -m benchmarks.via %s`.\n\n" % " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        + "| "
        + " | ".join(COLUMNS)
        + " |\n|"
        + "---|" * len(COLUMNS)
        + "\n"
        + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    )
    print("\nwrote %s (%.0f s)" % (args.out, info["duration_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
