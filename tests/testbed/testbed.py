"""The `Testbed`: N real SSH hosts on this machine, up and torn down as one.

Owns the life cycle of a run: allocation (via `registry`), bring-up of every
host (namespaces and veths via `netns`, files and processes via `hosts`),
the client-side files (key pairs, known_hosts variants, ssh_config), the
ssh argv helpers, the fault helpers and teardown.

Usage::

    with Testbed(hosts=3, rtt_ms=0, private={"h3": "h2"}) as tb:
        h1 = tb["h1"]                      # Host: name, address, port, netns,
                                           # reachable_from, tmp_dir, home_dir,
                                           # root_home_dir, user_home(user)
        subprocess.run(tb.ssh_argv(h1, tb.users.key, "id"))

Attributes once started: run_id, state_dir, network, hosts ({name: Host}),
users (Accounts), key / other_key (private key paths; other_key is
authorized nowhere), known_hosts (correct), wrong_known_hosts (every host
pinned to a wrong key; `wrong_known_hosts_for(host)` for just one),
empty_known_hosts, ssh_config (Host aliases h1.. with ProxyJump for private
hosts: `ssh -F tb.ssh_config nsm-key@h3`).  All hosts share one host key.

What a host shares with the controller: the PID namespace (sessions are
visible in the controller's `ps`), /etc (accounts, sudoers), /usr, /var and
/run.  Private per host: network namespace, /tmp, /home and /root (with
/root/.pyenv bind-mounted read-only).

Addressing: the run owns 10.213.<block>.0/24 (a root-namespace
`unreachable` route claims it), or for more than 62 hosts as many consecutive
/24s as it needs (62 hosts each; up to `MAX_HOSTS`).  Host number n (1-based)
has slot s = (n-1) % 62 + 1 in block <first block> + (n-1) // 62 and sits on
the /30 10.213.<block>.4s: .4s+1 is the outer end (root namespace, or the
bastion's namespace for a private host), .4s+2 is the host's address.  A
private host therefore has no route from the controller: connecting to it
fails at once with EHOSTUNREACH, as does `unused_address()` (an address of the
last block that no link covers, hitting the unreachable route).

Bring-up runs `BRINGUP_THREADS` hosts at a time (namespaces, veths, files,
readiness); 300 hosts take ~18 s on two idle cores (~7 s more to tear
down).  Each sshd accepts up to 100 unauthenticated connections before
refusing any (`MaxStartups 100:30:200`).

Faults: `cut_link(bastion, target)` sets the target's end of its uplink
down (carrier lost on both ends: packets are dropped silently; established
connections stall, new ones fail once ARP gives up, about 3 s);
`restore_link` brings it back (and flushes ARP entries that failed meanwhile,
which would otherwise refuse new connections for a while).  `kill_sshd(host)` SIGKILLs every process in
the host's network namespace (listener, sessions, relay); `start_sshd(host)`
starts them again.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import netns, registry
from .accounts import Account, Accounts, ensure_accounts
from .hosts import SSH_PORT, Host, Link
from .keys import generate, known_hosts_text
from .pythons import pythons
from .system import TestbedError, ensure_system

MAX_HOSTS = registry.HOSTS_PER_BLOCK * 8  # 496
BRINGUP_THREADS = 8
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_serial = 0
_serial_lock = threading.Lock()


def _next_run_id() -> str:
    global _serial
    with _serial_lock:
        _serial += 1
        return f"nsm-{os.getpid()}-{_serial}"


class Testbed:
    """N SSH hosts in network namespaces, with optional latency and bastions.

    hosts: a count (names h1..hN) or explicit names.
    rtt_ms: added round-trip time for every host (0 = no relay at all).
    host_rtt_ms: per-host overrides of rtt_ms.
    private: {target: bastion}; target is then reachable only from bastion.
    private_etc: names of files in /etc (e.g. "environment", "resolv.conf") each host
        gets its own copy of, bind-mounted over the real one in its mount namespace
        (so that a test may change them; edit them in place: a rename onto a mount
        point fails). The copy is ``host.etc_dir / name``.
    state_dir: where the run keeps its files (default under registry.BASE);
        must not exist or be empty, and must not be under /tmp.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        hosts: int | Sequence[str] = 3,
        *,
        rtt_ms: float = 0,
        host_rtt_ms: Mapping[str, float] | None = None,
        private: Mapping[str, str] | None = None,
        private_etc: Sequence[str] = (),
        state_dir: str | os.PathLike[str] | None = None,
        clean_stale: bool = True,
    ) -> None:
        if isinstance(hosts, str):
            hosts = [hosts]
        names = [f"h{i}" for i in range(1, hosts + 1)] if isinstance(hosts, int) else list(hosts)
        if not 1 <= len(names) <= MAX_HOSTS:
            raise TestbedError(f"between 1 and {MAX_HOSTS} hosts are supported, got {len(names)}")
        for name in names:
            if not HOST_NAME_RE.match(name):
                raise TestbedError(f"bad host name {name!r} (want {HOST_NAME_RE.pattern})")
        if len(set(names)) != len(names):
            raise TestbedError(f"duplicate host names in {names}")
        self.names = names
        self.rtt_ms = float(rtt_ms)
        self.host_rtt_ms = {k: float(v) for k, v in (host_rtt_ms or {}).items()}
        self.private = dict(private or {})
        self.private_etc = tuple(private_etc)
        for etc_name in self.private_etc:
            if "/" in etc_name or etc_name in ("", ".", "..") or not Path("/etc", etc_name).is_file():
                raise TestbedError(f"private_etc: {etc_name!r} is not a file in /etc")
        mentioned = [*self.host_rtt_ms, *self.private, *self.private.values()]
        for name in mentioned:
            if name not in names:
                raise TestbedError(f"unknown host {name!r} (hosts are {names})")
        self._order = self._creation_order()
        if min([self.rtt_ms, *self.host_rtt_ms.values()]) < 0:
            raise TestbedError("rtt_ms must be >= 0")
        self._requested_state_dir = Path(state_dir) if state_dir is not None else None
        self.clean_stale = clean_stale
        self.run_id = ""
        self.state_dir = Path()
        self.hosts: dict[str, Host] = {}
        self._users: Accounts | None = None
        self._record: registry.RunRecord | None = None
        self._block_records: list[registry.RunRecord] = []  # the further /24s of > 62 hosts
        self._closed = False
        self._started = False

    def _creation_order(self) -> list[str]:
        order: list[str] = []
        pending = list(self.names)
        while pending:
            ready = [n for n in pending if self.private.get(n) in (None, *order)]
            if not ready:
                raise TestbedError(f"bastion cycle or unknown bastion in private={self.private}")
            for name in ready:
                if self.private.get(name) == name:
                    raise TestbedError(f"host {name} cannot be its own bastion")
                order.append(name)
                pending.remove(name)
        return order

    # -- life cycle -----------------------------------------------------------
    def __enter__(self) -> Testbed:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Testbed:
        """Bring every host up and wait until each serves SSH."""
        if self._started:
            raise TestbedError("testbed already started")
        self._started = True
        ensure_system()
        users = ensure_accounts()
        self._users = users
        if self.clean_stale:
            registry.cleanup_stale()
        self.run_id = _next_run_id()
        self.state_dir = self._prepare_state_dir()
        blocks = -(-len(self.names) // registry.HOSTS_PER_BLOCK)
        self._record, *self._block_records = registry.allocate(self.run_id, self.state_dir, blocks)
        (self.state_dir / registry.MARKER).write_text(self.run_id + "\n")
        self._record.save()
        self._owner_pid = os.getpid()
        atexit.register(self._atexit)
        try:
            self._bring_up(users)
        except BaseException:
            self.close()
            raise
        return self

    def _prepare_state_dir(self) -> Path:
        path = self._requested_state_dir or registry.BASE / self.run_id
        real = Path(os.path.realpath(path))
        if real == Path("/tmp") or Path("/tmp") in real.parents:
            raise TestbedError(f"state dir {path} must not be under /tmp (/tmp is replaced inside the hosts)")
        if real.exists() and (not real.is_dir() or any(real.iterdir())):
            raise TestbedError(f"state dir {path} exists and is not an empty directory")
        real.mkdir(mode=0o700, parents=True, exist_ok=True)
        real.chmod(0o700)
        return real

    def _bring_up(self, users: Accounts) -> None:
        record = self._record
        if record is None:
            raise TestbedError("testbed has no run record")
        keys = self.state_dir / "keys"
        keys.mkdir(mode=0o700)
        self.key_pair = generate(keys / "id_ed25519", f"nsm-testbed-{self.run_id}")
        self.other_key_pair = generate(keys / "other_ed25519", "nsm-testbed-unauthorized")
        self.host_key = generate(keys / "ssh_host_ed25519_key", f"host-{self.run_id}")
        self.wrong_host_key = generate(keys / "wrong_host_ed25519_key", "wrong-host-key")
        for number, name in enumerate(self.names, start=1):
            bastion = self.private.get(name)
            ns = f"{self.run_id}-{name}"
            outer_ns = None if bastion is None else f"{self.run_id}-{bastion}"
            block, slot = self._place(number)
            outer_if = f"nsm{block}h{slot}" if bastion is None else f"dn{number}"
            prefix = f"10.213.{block}"
            link = Link(outer_ns, outer_if, ns, "eth0", f"{prefix}.{4 * slot + 1}", f"{prefix}.{4 * slot + 2}")
            self.hosts[name] = Host(
                name=name,
                address=link.inner_address,
                port=SSH_PORT,
                netns=ns,
                reachable_from=bastion,
                rtt_ms=self.host_rtt_ms.get(name, self.rtt_ms),
                state_dir=self.state_dir / "hosts" / name,
                link=link,
                private_etc=self.private_etc,
            )
        (self.state_dir / "hosts").mkdir(mode=0o700)
        known = known_hosts_text((h.address, h.port, self.host_key) for h in self.hosts.values())
        wrong = known_hosts_text((h.address, h.port, self.wrong_host_key) for h in self.hosts.values())
        self.known_hosts = self._write("known_hosts", known)
        self.wrong_known_hosts = self._write("known_hosts.wrong", wrong)
        self.empty_known_hosts = self._write("known_hosts.empty", "")
        record_lock = threading.Lock()

        def make(name: str) -> None:
            host = self.hosts[name]
            netns.create_netns(host.netns)
            with record_lock:
                record.netns.append(host.netns)
                if host.link.outer_ns is None:
                    record.root_links.append(host.link.outer_if)
                record.save()
            link = host.link
            netns.add_veth(
                link.outer_ns,
                link.outer_if,
                link.inner_ns,
                link.inner_if,
                f"{link.outer_address}/{link.prefixlen}",
                f"{link.inner_address}/{link.prefixlen}",
            )
            host.write_files(users, self.key_pair, self.host_key, known)

        # A private host's veth lives in its bastion's namespace: bastions first.
        for wave in self._waves():
            _parallel(make, wave)
        self.ssh_config = self._write("ssh_config", self._ssh_config_text())
        for host in self.hosts.values():
            host.start()
        _parallel(lambda name: self.hosts[name].wait_ready(), self.names)

    def _place(self, number: int) -> tuple[int, int]:
        """(block, slot) of host number `number` (1-based)."""
        if self._record is None:
            raise TestbedError("testbed not started")
        index, slot = divmod(number - 1, registry.HOSTS_PER_BLOCK)
        return self._record.block + index, slot + 1

    def _waves(self) -> list[list[str]]:
        """The creation order cut where a host's bastion was made in an earlier wave."""
        waves: list[list[str]] = []
        done: set[str] = set()
        for name in self._order:
            bastion = self.private.get(name)
            if not waves or (bastion is not None and bastion not in done):
                done.update(waves[-1] if waves else ())
                waves.append([])
            waves[-1].append(name)
        return waves

    def _write(self, name: str, text: str) -> Path:
        path = self.state_dir / name
        path.write_text(text)
        path.chmod(0o644)
        return path

    def close(self) -> None:
        """Kill every process, delete namespaces, veths, route and state dir."""
        if self._closed or not self._started:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        errors = []
        for host in self.hosts.values():
            try:
                host.stop()
            except TestbedError as exc:
                errors.append(str(exc))
        if self._record is not None:
            with registry.locked():
                registry.teardown(self._record)
                for extra in self._block_records:
                    registry.teardown(extra)
        if errors:
            raise TestbedError("teardown problems: " + "; ".join(errors))

    def _atexit(self) -> None:
        if os.getpid() == getattr(self, "_owner_pid", None):
            self.close()

    # -- access ---------------------------------------------------------------
    def __getitem__(self, name: str) -> Host:
        return self.host(name)

    def host(self, host: Host | str) -> Host:
        """The Host object for a name (or the Host itself)."""
        if isinstance(host, Host):
            return host
        try:
            return self.hosts[host]
        except KeyError:
            raise TestbedError(f"no host {host!r} (hosts are {list(self.hosts)})") from None

    @property
    def users(self) -> Accounts:
        """The test accounts (`tb.users.key.name`, `tb.users.pw.password`, ...)."""
        if self._users is None:
            raise TestbedError("testbed not started")
        return self._users

    def _account(self, user: Account | str) -> Account:
        return user if isinstance(user, Account) else self.users.by_name(user)

    @property
    def key(self) -> Path:
        """Private key authorized for the key-login accounts."""
        return self.key_pair.private

    @property
    def other_key(self) -> Path:
        """A private key authorized nowhere (for bad-key tests)."""
        return self.other_key_pair.private

    @property
    def network(self) -> str:
        """The run's (first) address block, e.g. '10.213.1.0/24'."""
        if self._record is None:
            raise TestbedError("testbed not started")
        return str(self._record.network)

    @property
    def networks(self) -> list[str]:
        """Every address block of the run (one per 62 hosts)."""
        if self._record is None:
            raise TestbedError("testbed not started")
        return [str(r.network) for r in (self._record, *self._block_records)]

    def wrong_known_hosts_for(self, host: Host | str) -> Path:
        """A known_hosts file that is correct except that `host` has the wrong key."""
        target = self.host(host)
        text = known_hosts_text(
            (h.address, h.port, self.wrong_host_key if h is target else self.host_key) for h in self.hosts.values()
        )
        return self._write(f"known_hosts.wrong-{target.name}", text)

    # -- ssh helpers ----------------------------------------------------------
    def ssh_args(
        self,
        host: Host | str,
        user: Account | str,
        *,
        password: bool | None = None,
        identity: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        jump: bool = True,
    ) -> list[str]:
        """ssh options (no destination) that use only the testbed's private files.

        password: None = by account (password login for accounts without an
            authorized key); True = password only, BatchMode off (drive it with
            sshpass); False = key only with BatchMode=yes.
        identity: key to offer (default: the testbed key).
        known_hosts: known_hosts file (default: the correct one).
        jump: for a private host, add a ProxyCommand through its bastion
            (logging in there as the key account).
        """
        h = self.host(host)
        account = self._account(user)
        use_password = (not account.authorized) if password is None else password
        args = [
            "-F",
            "/dev/null",
            "-p",
            str(h.port),
            "-o",
            f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "CheckHostIP=no",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "LogLevel=ERROR",
        ]
        if use_password:
            args += [
                "-o",
                "BatchMode=no",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ]
        else:
            args += [
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-i",
                str(identity or self.key),
            ]
        if jump and h.reachable_from is not None:
            bastion = self.host(h.reachable_from)
            key_user = self.users.key
            hop = ["ssh", *self.ssh_args(bastion, key_user, password=False), "-W", "%h:%p", f"{key_user.name}@{bastion.address}"]
            args += ["-o", f"ProxyCommand={shlex.join(hop)}"]
        return args

    def ssh_argv(self, host: Host | str, user: Account | str, *command: str, **options: Any) -> list[str]:
        """Full argv: `[sshpass -p PW] ssh <ssh_args> user@address command...`.

        sshpass is prefixed when the options select password login.
        """
        h = self.host(host)
        account = self._account(user)
        argv = ["ssh", *self.ssh_args(h, account, **options), f"{account.name}@{h.address}", *command]
        password = options.get("password")
        if (not account.authorized) if password is None else password:
            argv = ["sshpass", "-p", account.password, *argv]
        return argv

    def host_argv(
        self,
        host: Host | str,
        *argv: str,
        user: Account | str | None = None,
    ) -> list[str]:
        """Run argv inside the host's network namespace and a fresh copy of its mounts.

        With user, the command runs as that account (runuser; HOME etc. set).
        """
        h = self.host(host)
        prefix = h.enter_argv()
        if user is not None:
            prefix += ["runuser", "-u", self._account(user).name, "--"]
        return [*prefix, *argv]

    def _ssh_config_text(self) -> str:
        lines = []
        key_user = self.users.key.name
        for h in self.hosts.values():
            lines += [f"Host {h.name}", f"    HostName {h.address}", f"    Port {h.port}"]
            if h.reachable_from:
                lines.append(f"    ProxyJump {key_user}@{h.reachable_from}")
        lines += [
            "Host *",
            f"    IdentityFile {self.key}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    CheckHostIP no",
            "    BatchMode yes",
            "    ConnectTimeout 10",
        ]
        return "\n".join(lines) + "\n"

    # -- faults ---------------------------------------------------------------
    def _link(self, bastion: Host | str | None, target: Host | str) -> Host:
        h = self.host(target)
        expected = None if bastion is None else self.host(bastion).name
        if h.reachable_from != expected:
            raise TestbedError(
                f"no link between {expected or 'the root namespace'} and "
                f"{h.name} (its uplink goes to {h.reachable_from or 'root'})"
            )
        return h

    def cut_link(self, bastion: Host | str | None, target: Host | str) -> None:
        """Take the link between bastion (None = controller) and target down."""
        h = self._link(bastion, target)
        netns.set_link(h.link.inner_ns, h.link.inner_if, up=False)

    def restore_link(self, bastion: Host | str | None, target: Host | str) -> None:
        """Bring a cut link back up."""
        h = self._link(bastion, target)
        netns.set_link(h.link.inner_ns, h.link.inner_if, up=True)
        netns.flush_neighbours(h.link.outer_ns, h.link.outer_if)
        netns.flush_neighbours(h.link.inner_ns, h.link.inner_if)

    def kill_sshd(self, host: Host | str) -> list[int]:
        """SIGKILL the host's sshd, all its sessions and its relay; return the pids."""
        return self.host(host).stop()

    def start_sshd(self, host: Host | str) -> None:
        """Start a killed host's sshd (and relay) again and wait until it serves."""
        h = self.host(host)
        h.stop()
        h.start()
        h.wait_ready()

    def unused_address(self) -> str:
        """An address of the run's (last) block that no host or link has.

        The root namespace routes it to the block's `unreachable` route, so
        connecting fails immediately with EHOSTUNREACH ("No route to host").
        Slot 63 of a block is never used, so the last block always has one.
        """
        block, slot = self._place(len(self.names) + 1)
        if slot == 1:  # the last block is full: its spare slot
            block, slot = block - 1, registry.HOSTS_PER_BLOCK + 1
        return f"10.213.{block}.{4 * slot + 2}"

    # -- description ----------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON-able description of hosts, users, keys and client files."""
        users = self.users
        return {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "network": self.network,
            "networks": self.networks,
            "rtt_ms": self.rtt_ms,
            "key": str(self.key),
            "other_key": str(self.other_key),
            "known_hosts": str(self.known_hosts),
            "wrong_known_hosts": str(self.wrong_known_hosts),
            "empty_known_hosts": str(self.empty_known_hosts),
            "ssh_config": str(self.ssh_config),
            "unused_address": self.unused_address(),
            "hosts": {
                h.name: {
                    "address": h.address,
                    "port": h.port,
                    "netns": h.netns,
                    "reachable_from": h.reachable_from,
                    "rtt_ms": h.rtt_ms,
                    "tmp_dir": str(h.tmp_dir),
                    "home_dir": str(h.home_dir),
                    "root_home_dir": str(h.root_home_dir),
                    "ssh_args": self.ssh_args(h, users.key),
                }
                for h in self.hosts.values()
            },
            "users": {
                role: {"name": a.name, "password": a.password, "key_login": a.authorized}
                for role, a in zip(("key", "pw", "sudo", "sudopw", "su"), users.all())
            },
            "pythons": pythons(),
        }

    def describe_json(self) -> str:
        return json.dumps(self.describe(), indent=2)


def _parallel(fn: Callable[[str], None], names: Sequence[str]) -> None:
    """fn(name) for every name, `BRINGUP_THREADS` at a time; the first error is raised."""
    if len(names) <= 1:
        for name in names:
            fn(name)
        return
    with ThreadPoolExecutor(max_workers=min(BRINGUP_THREADS, len(names)), thread_name_prefix="testbed-up") as pool:
        futures = [pool.submit(fn, name) for name in names]
        for future in futures:
            future.result()
