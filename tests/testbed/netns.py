"""Network-namespace primitives.

Owns: creating and deleting named network namespaces and veth links
(`ip netns`, `ip link`, `ip addr`), finding and killing every process whose
network namespace is a given one (by /proc/<pid>/ns/net inode, never by
process name), and opening a socket inside a namespace from the controller
process (`socket_in`, via setns(2) in a short-lived thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
import time
from pathlib import Path

from .system import TestbedError, all_pids, run

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run `ip [-n netns] args...`, return stdout."""
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", netns]
    return run([*argv, *args], check=check).stdout


def list_netns() -> list[str]:
    """Names of all named network namespaces."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_inode(name: str) -> int | None:
    """Inode of the namespace (as in /proc/<pid>/ns/net), or None if absent."""
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def create_netns(name: str) -> None:
    """Create namespace `name` with its loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def add_veth(
    outer_ns: str | None,
    outer_if: str,
    inner_ns: str,
    inner_if: str,
    outer_cidr: str,
    inner_cidr: str,
) -> None:
    """Create a veth pair between outer_ns (None = root) and inner_ns, addressed and up."""
    ip("link", "add", outer_if, "type", "veth", "peer", "name", inner_if, "netns", inner_ns, netns=outer_ns)
    ip("addr", "add", outer_cidr, "dev", outer_if, netns=outer_ns)
    ip("addr", "add", inner_cidr, "dev", inner_if, netns=inner_ns)
    ip("link", "set", outer_if, "up", netns=outer_ns)
    ip("link", "set", inner_if, "up", netns=inner_ns)


def set_link(netns: str | None, ifname: str, up: bool) -> None:
    """Set an interface administratively up or down."""
    ip("link", "set", ifname, "up" if up else "down", netns=netns)


def flush_neighbours(netns: str | None, ifname: str) -> None:
    """Forget ARP entries on an interface (FAILED ones would refuse new connections)."""
    ip("neigh", "flush", "dev", ifname, netns=netns, check=False)


def pids_in_netns(inode: int) -> list[int]:
    """Pids of live (non-zombie) processes whose network namespace has this inode."""
    wanted = f"net:[{inode}]"
    found = []
    for pid in all_pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == wanted:
                found.append(pid)
        except OSError:
            continue
    return found


def kill_netns_processes(name: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process in namespace `name` until none is left; return the pids."""
    inode = netns_inode(name)
    if inode is None:
        return []
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in pids_in_netns(inode) if p != os.getpid()]
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise TestbedError(f"processes in netns {name} survive SIGKILL: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            else:
                killed.append(pid)
        _reap_children(pids)
        time.sleep(0.01)


def _reap_children(pids: list[int]) -> None:
    """Reap any of pids that are our own children (so they don't linger as zombies)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def delete_netns(name: str) -> None:
    """Kill the namespace's processes and delete it (no error if it is gone)."""
    kill_netns_processes(name)
    if (NETNS_DIR / name).exists():
        ip("netns", "delete", name, check=False)
    if (NETNS_DIR / name).exists():
        raise TestbedError(f"could not delete network namespace {name}")


def delete_link(ifname: str, netns: str | None = None) -> None:
    """Delete an interface if it exists."""
    ip("link", "delete", ifname, netns=netns, check=False)


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(
    netns: str | None,
    family: int = socket.AF_INET,
    kind: int = socket.SOCK_STREAM,
) -> socket.socket:
    """A new socket that lives in namespace `netns` (None = the caller's own)."""
    if netns is None:
        return socket.socket(family, kind)
    result: list[socket.socket | BaseException] = []

    def worker() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the calling thread
            result.append(exc)

    # The thread dies right after; only it ever switched namespace.
    thread = threading.Thread(target=worker, name=f"setns-{netns}")
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise TestbedError(f"cannot open a socket in netns {netns}: {outcome}") from outcome
    return outcome


def connect_in(netns: str | None, address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to address:port made from inside `netns`."""
    sock = socket_in(netns)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
