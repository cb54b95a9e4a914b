"""Container benchmark: ns.mitogen.podman beside containers.podman.podman, and containers behind a host.

Usage (as root, after ``scripts/setup``, which installs podman, runc and the
containers.podman collection)::

    .venv/bin/python -m benchmarks.containers [--containers 20] [--tasks 30] [--repeat 3]
        [--forks 20] [--skip-via] [--out benchmarks/results/containers.json]

Two parts, each on ``--containers`` real podman containers (``tests/testbed/containers.py``:
the host's root filesystem as an overlay, no network):

* local: a play of ``--tasks`` tasks (commands, shell, copy, file, stat, ping; no
  facts) on every container, ``--repeat`` times, variants interleaved:
  ``containers.podman.podman`` under ``ansible.builtin.linear`` (one ``podman exec``
  and one Python per step, as Ansible runs it) and ``ns.mitogen.podman`` under
  ``ns.mitogen.linear`` (one interpreter per container for the run). Measured: wall
  time and controller CPU (ansible-playbook, its workers and the podman clients they
  wait for, plus the multiplexer and its children, from ``NS_MITOGEN_MUX_RUSAGE``);
  the median of the repeats. The issue's target: >= 5x less wall than the counterpart.
* via: the same containers reached from one testbed host (``mitogen_via:
  sudo:root@h1``: ssh to h1, sudo, podman there), same play, ``--repeat`` runs: wall
  time, and what crossed the controller's link to h1 - every module and module
  source the multiplexer sent (its ``stats``, read by a last play on localhost while
  the run is alive): each once per run, whatever the number of containers.

Results: the table on stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.testbed import Testbed  # noqa: E402
from tests.testbed.containers import Podman, unavailable_reason  # noqa: E402

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
COLLECTIONS = ROOT / ".build" / "collections"
PYTHON = "/usr/bin/python3"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "containers.json"
BENCH_DIR = "/tmp/nsm-bench"

# The last play of a via run: the multiplexer's counters, asked while the run is alive.
STATS_SCRIPT = """
import json, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux_client
pid = int(open(%(pid_file)r).read())
client = _mux_client.connect_client(pid, [])
try:
    stats = client.request("stats")
finally:
    client.close()
out = {
    "modules_sent": {str(k): v for k, v in stats["modules_sent"].items()},
    "sources_given": {str(k): v for k, v in stats["sources_given"].items()},
}
open(%(out)r, "w").write(json.dumps(out))
"""


def _task(i: int) -> List[str]:
    kind = i % 6
    if kind == 0:
        return ["    - ansible.builtin.command: echo task-%d" % i, "      changed_when: false"]
    if kind == 1:
        return ["    - ansible.builtin.shell: cat /etc/hostname | wc -c", "      changed_when: false"]
    if kind == 2:
        return [
            "    - ansible.builtin.copy:",
            "        content: 'file %d {{ inventory_hostname }}'" % i,
            "        dest: %s/f%d.txt" % (BENCH_DIR, i),
            "        mode: '0644'",
        ]
    if kind == 3:
        return ["    - ansible.builtin.file:", "        path: %s/d%d" % (BENCH_DIR, i), "        state: directory"]
    if kind == 4:
        return ["    - ansible.builtin.stat:", "        path: /etc/hostname"]
    return ["    - ansible.builtin.ping:"]


def write_play(path: Path, tasks: int, stats: Optional[Dict[str, str]] = None) -> None:
    """``tasks`` tasks on group ``containers`` (the first makes the scratch dir); with ``stats``, the stats play."""
    lines = ["- hosts: containers", "  gather_facts: false", "  tasks:"]
    lines += ["    - ansible.builtin.file:", "        path: %s" % BENCH_DIR, "        state: directory"]
    for i in range(1, tasks):
        lines += _task(i)
    if stats is not None:
        script = path.parent / "stats.py"
        script.write_text(STATS_SCRIPT % dict(stats, collections=str(COLLECTIONS)))
        lines += ["- hosts: localhost", "  gather_facts: false", "  tasks:"]
        lines += ["    - ansible.builtin.command: %s %s" % (sys.executable, script), "      changed_when: false"]
    path.write_text("\n".join(lines) + "\n")


def run(
    inventory: Path, play: Path, env: Dict[str, str], work: Path, forks: int, pid_file: Optional[Path] = None
) -> Dict[str, Any]:
    """One ansible-playbook run: wall, controller CPU, its recap's failures (raises on rc != 0)."""
    rusage = work / ("mux-rusage-%d.jsonl" % time.monotonic_ns())
    environ = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_HOME=str(work / "ansible-home"),
        ANSIBLE_FORKS=str(forks),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        NS_MITOGEN_MUX_RUSAGE=str(rusage),
        **env,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(play)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if pid_file is not None:
        pid_file.write_text(str(proc.pid))
    output, _unused = proc.communicate()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError("ansible-playbook failed (%d):\n%s" % (proc.returncode, output[-6000:]))
    deadline = time.monotonic() + 10
    while "ns.mitogen" in env.get("ANSIBLE_STRATEGY", "") and not rusage.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the multiplexer writes its CPU as it exits, after the run
    mux = sum(json.loads(line)["cpu_s"] for line in rusage.read_text().splitlines()) if rusage.exists() else 0.0
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) + mux
    return {"wall_s": wall, "cpu_s": cpu}


def inventory(path: Path, names: List[str], host_vars: str, extra: str = "") -> Path:
    lines = ["[containers]"] + ["c%02d ansible_host=%s" % (i, n) for i, n in enumerate(names)]
    lines += ["[containers:vars]", "ansible_python_interpreter=%s" % PYTHON, host_vars, extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def local_part(engine: Podman, names: List[str], args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    play = work / "play.yml"
    write_play(play, args.tasks)
    exe = "ansible_podman_executable=%s" % engine.executable
    variants = {
        "containers.podman.podman": (
            inventory(work / "hosts-vanilla", names, "ansible_connection=containers.podman.podman\n" + exe),
            {"ANSIBLE_STRATEGY": "ansible.builtin.linear"},
        ),
        "ns.mitogen.podman": (
            inventory(work / "hosts-nsm", names, "ansible_connection=ns.mitogen.podman\n" + exe),
            {"ANSIBLE_STRATEGY": "ns.mitogen.linear"},
        ),
    }
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in variants}
    for i in range(args.repeat):
        for name, (inv, env) in variants.items():
            engine.podman("exec", names[0], "rm", "-rf", BENCH_DIR, check=False)
            result = run(inv, play, env, work, args.forks)
            print("local %s run %d: wall %.1f s, cpu %.1f s" % (name, i + 1, result["wall_s"], result["cpu_s"]), flush=True)
            runs[name].append(result)
    return {name: _median(r) for name, r in runs.items()} | {"runs": runs}


def via_part(engine: Podman, names: List[str], args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    tb = Testbed(hosts=1)
    tb.start()
    try:
        pid_file, stats_file = work / "playbook.pid", work / "stats.json"
        play = work / "play-via.yml"
        write_play(play, args.tasks, stats={"pid_file": str(pid_file), "out": str(stats_file)})
        host = "h1 ansible_connection=ns.mitogen.ssh ansible_host=%s ansible_user=%s ansible_ssh_private_key_file=%s" % (
            tb["h1"].address,
            tb.users.sudo.name,
            tb.key,
        )
        host += " ansible_ssh_common_args='-o UserKnownHostsFile=%s' ansible_python_interpreter=%s" % (tb.known_hosts, PYTHON)
        via = "ansible_connection=ns.mitogen.podman\nmitogen_via=sudo:root@h1\nansible_podman_executable=%s" % (
            engine.host_executable()
        )
        inv = inventory(work / "hosts-via", names, via, "[hosts]\n" + host)
        runs = []
        for i in range(args.repeat):
            result = run(inv, play, {"ANSIBLE_STRATEGY": "ns.mitogen.linear"}, work, args.forks, pid_file)
            stats = json.loads(stats_file.read_text())
            # per first hop (h1's login; localhost's interpreter, for the stats play):
            # modules sent, and the most times one module went the same way (1: each once)
            per_link = {cid: sum(per.values()) for cid, per in stats["modules_sent"].items()}
            most = max((n for per in stats["modules_sent"].values() for n in per.values()), default=0)
            sources = sum(sum(per.values()) for per in stats["sources_given"].values())
            result.update(module_uploads=max(per_link.values(), default=0), most_sends_of_one=most, source_uploads=sources)
            print(
                "via run %d: wall %.1f s, modules sent per first hop %s (each at most %d time(s)), %d module sources"
                % (i + 1, result["wall_s"], per_link, most, sources),
                flush=True,
            )
            runs.append(result)
        return {"ns.mitogen.podman via h1": _median(runs), "runs": runs}
    finally:
        tb.close()


def _median(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--skip-via", action="store_true", help="only the local part")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print("benchmarks.containers: %s" % reason, file=sys.stderr)
        return 2
    results: Dict[str, Any] = {"args": vars(args) | {"out": str(args.out)}, "date": datetime.datetime.now().isoformat()}
    with tempfile.TemporaryDirectory(prefix="nsm-bench-containers-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        with Podman(state_dir=work / "engine") as engine:
            names = [engine.run("bench-%02d" % i) for i in range(args.containers)]
            results["local"] = local_part(engine, names, args, work)
            if not args.skip_via:
                results["via"] = via_part(engine, names, args, work)
    local = results["local"]
    ours, theirs = local["ns.mitogen.podman"], local["containers.podman.podman"]
    print("\n| Variant | Wall (median) | Controller CPU (median) |\n|---|---|---|")
    for name in ("containers.podman.podman", "ns.mitogen.podman"):
        print("| %s | %.1f s | %.1f s |" % (name, local[name]["wall_s"], local[name]["cpu_s"]))
    print("\nwall: %.1fx less with ns.mitogen.podman" % (theirs["wall_s"] / ours["wall_s"]))
    if "via" in results:
        v = results["via"]["ns.mitogen.podman via h1"]
        print(
            "via h1 (%d containers): wall %.1f s, %d modules to h1 (each at most %d time(s)), %d module sources"
            % (args.containers, v["wall_s"], v["module_uploads"], v["most_sends_of_one"], v["source_uploads"])
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
