"""Run registry: who owns which namespaces, addresses and state dirs.

Owns the machine-wide bookkeeping that lets several testbeds coexist and lets
a later process clean up after a crashed one:

* `BASE` (/var/tmp/ns-mitogen-testbed, not under /tmp because /tmp is replaced
  inside the hosts) holds default state dirs, `runs/<run-id>.json` records and
  a lock file serialising allocation and cleanup.
* Each run claims one /24 inside 10.213.0.0/16 by adding an `unreachable`
  route for it in the root namespace (`proto 213` marks it as ours).  Any
  address of the block that no link covers therefore fails at once with
  EHOSTUNREACH; blocks already routed or addressed on this machine are skipped.
  A run of more than `HOSTS_PER_BLOCK` hosts claims consecutive /24s: each
  further one has a record of its own, run id `<run-id>.b<k>`, owning only
  that block's route and root links (one record per block keeps the records'
  format that older checkouts' `cleanup_stale` read: a field they do not know
  makes them drop the record and take the run's links for debris).
* Namespaces are named `<run-id>-<host>` with run-id `nsm-<pid>-<serial>`;
  root-side veths are named `nsm<block>h<n>`.  `cleanup_stale()` removes all
  of these whose owning process is dead.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import netns
from .system import TestbedError, pid_alive, proc_starttime, run

BASE = Path("/var/tmp/ns-mitogen-testbed")
RUNS = BASE / "runs"
LOCK = BASE / ".lock"
MARKER = ".ns-mitogen-testbed"
SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")
ROUTE_PROTO = "213"
RUN_ID_RE = re.compile(r"^(nsm-(\d+)-\d+)-")
ROOT_LINK_RE = re.compile(r"^nsm(\d+)h\d+$")
#: hosts per /24: host slot s (1-based) uses the /30 at .4s; slot 63 stays free
#: (``Testbed.unused_address``).
HOSTS_PER_BLOCK = 62


@dataclass
class RunRecord:
    """Everything needed to tear a run down, even from another process."""

    run_id: str
    pid: int
    starttime: int
    state_dir: str
    block: int
    netns: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.213.{self.block}.0/24")

    def alive(self) -> bool:
        return pid_alive(self.pid, self.starttime)

    def save(self) -> None:
        text = json.dumps(asdict(self), indent=2)
        RUNS.mkdir(parents=True, exist_ok=True)
        _write_atomic(RUNS / f"{self.run_id}.json", text)
        if Path(self.state_dir).is_dir() and "." not in self.run_id:  # a further block's: not the run's
            _write_atomic(Path(self.state_dir) / "run.json", text)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise TestbedError(f"unreadable run record {path}: {exc}") from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def locked() -> Iterator[None]:
    """Hold the machine-wide testbed lock."""
    BASE.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix routed or addressed in the root namespace."""
    nets = []
    out = run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout
    out += run(["ip", "-4", "-o", "addr", "show"]).stdout
    for token in out.split():
        if "/" not in token and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", token):
            continue
        try:
            nets.append(ipaddress.IPv4Network(token, strict=False))
        except ValueError:
            continue
    return nets


def allocate(run_id: str, state_dir: Path, blocks: int = 1) -> list[RunRecord]:
    """Claim `blocks` free consecutive /24s of 10.213.0.0/16 and register the run (under the lock).

    One record per block, the run's own first (see the module's docstring).
    """
    with locked():
        in_use = [n for n in _networks_in_use() if n.overlaps(SUPERNET)]

        def free(block: int) -> bool:
            net = ipaddress.IPv4Network(f"10.213.{block}.0/24")
            return not any(n.overlaps(net) and n.prefixlen >= 16 for n in in_use)

        for first in range(1, 256 - blocks):
            if not all(free(b) for b in range(first, first + blocks)):
                continue
            starttime = proc_starttime(os.getpid())
            if starttime is None:
                raise TestbedError("cannot read own start time from /proc")
            found = []
            for k in range(blocks):
                rid = run_id if k == 0 else f"{run_id}.b{k + 1}"
                found.append(RunRecord(rid, os.getpid(), starttime, str(state_dir), first + k))
                run(["ip", "route", "add", "unreachable", str(found[-1].network), "proto", ROUTE_PROTO])
                found[-1].save()
            return found
    raise TestbedError(f"no {blocks} free consecutive /24s left in 10.213.0.0/16")


def safe_rmtree(path: Path) -> None:
    """rm -rf path, refusing if anything below it is a mount point."""
    if not path.exists():
        return
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            if mount_point == real or mount_point.startswith(real.rstrip("/") + "/"):
                raise TestbedError(f"refusing to delete {path}: {mount_point} is mounted inside")
    shutil.rmtree(path)


def teardown(record: RunRecord) -> list[str]:
    """Remove everything a run created; return a description of what was removed."""
    removed = []
    names = set(record.netns) | {n for n in netns.list_netns() if n.startswith(record.run_id + "-")}
    for name in sorted(names):
        if name in netns.list_netns():
            netns.delete_netns(name)
            removed.append(f"netns {name}")
    links = set(record.root_links) | set(_root_links_of_block(record.block))
    for link in sorted(links):
        if _link_exists(link):
            netns.delete_link(link)
            removed.append(f"link {link}")
    if _route_exists(record.network):
        run(["ip", "route", "del", "unreachable", str(record.network), "proto", ROUTE_PROTO], check=False)
        removed.append(f"route {record.network}")
    state_dir = Path(record.state_dir)
    marker = state_dir / MARKER
    if marker.exists() and marker.read_text().strip() == record.run_id:
        safe_rmtree(state_dir)
        removed.append(f"state dir {state_dir}")
    (RUNS / f"{record.run_id}.json").unlink(missing_ok=True)
    return removed


def _root_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"]).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def _root_links_of_block(block: int) -> list[str]:
    return [n for n in _root_links() if (m := ROOT_LINK_RE.match(n)) and int(m[1]) == block]


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _our_routes() -> list[ipaddress.IPv4Network]:
    out = run(["ip", "-4", "-o", "route", "show", "type", "unreachable", "proto", ROUTE_PROTO]).stdout
    nets = []
    for line in out.splitlines():
        fields = line.split()
        for token in fields[:2]:
            try:
                net = ipaddress.IPv4Network(token)
            except ValueError:
                continue
            if net.subnet_of(SUPERNET):
                nets.append(net)
    return nets


def _route_exists(net: ipaddress.IPv4Network) -> bool:
    return net in _our_routes()


def records() -> list[RunRecord]:
    """All registered runs (alive or not)."""
    found = []
    for path in sorted(RUNS.glob("*.json")) if RUNS.is_dir() else []:
        try:
            found.append(RunRecord.load(path))
        except TestbedError:
            path.unlink(missing_ok=True)
    return found


def cleanup_stale() -> list[str]:
    """Remove leftovers of runs whose owning process is dead; return what was removed.

    Covers registered runs (namespaces, their processes, veths, the address
    block's route, state dir) and, for unregistered debris, any `nsm-<pid>-*`
    namespace with a dead pid, any `proto 213` route and `nsm<block>h<n>` link
    whose block no live run holds, and default state dirs with a dead owner.
    """
    removed: list[str] = []
    with locked():
        live: dict[str, RunRecord] = {}
        for record in records():
            if record.alive():
                live[record.run_id] = record
            else:
                removed += teardown(record)
        live_blocks = {r.block for r in live.values()}
        for name in netns.list_netns():
            match = RUN_ID_RE.match(name)
            if not match or match[1] in live:
                continue
            if pid_alive(int(match[2])) and match[1] not in live:
                # Owned by a live process that has not registered (yet): leave it.
                continue
            netns.delete_netns(name)
            removed.append(f"netns {name}")
        for net in _our_routes():
            block = int(str(net).split(".")[2])
            if block not in live_blocks:
                run(["ip", "route", "del", "unreachable", str(net), "proto", ROUTE_PROTO], check=False)
                removed.append(f"route {net}")
        for link in _root_links():
            match = ROOT_LINK_RE.match(link)
            if match and int(match[1]) not in live_blocks:
                netns.delete_link(link)
                removed.append(f"link {link}")
        if BASE.is_dir():
            for child in BASE.iterdir():
                marker = child / MARKER
                if child.is_dir() and marker.exists():
                    match = RUN_ID_RE.match(marker.read_text().strip() + "-")
                    if match and match[1] not in live and not pid_alive(int(match[2])):
                        safe_rmtree(child)
                        removed.append(f"state dir {child}")
    return removed


def wait_gone(pid: int, starttime: int | None, timeout: float) -> bool:
    """Wait until pid (with that start time) has exited; True if it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid, starttime):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
