"""Real-infrastructure test bed for ns.mitogen: SSH hosts in network namespaces.

Public API (see `testbed.py` for the details):

* `Testbed(hosts=3, *, rtt_ms=0, host_rtt_ms=None, private=None, state_dir=None)`
  context manager; `tb["h1"]` / `tb.hosts` give `Host` objects, `tb.users` the
  `Accounts`, `tb.ssh_args()` / `tb.ssh_argv()` client options, plus fault helpers.
* `cleanup_stale()` removes leftovers of dead runs.
* `pythons()` maps "X.Y" to pyenv interpreter paths.
* `ACCOUNTS` / `Accounts` / `Account` describe the test logins.

Module map: system (commands, packages), accounts (users, sudoers),
netns (namespaces, veths, process killing), registry (run records, address
blocks, stale cleanup), keys (key pairs, known_hosts), hosts (per-host files,
mount namespace, sshd/relay processes), relay (latency relay script),
testbed (the Testbed class), fixtures (pytest), __main__ (command line).
"""

from .accounts import ACCOUNTS, Account, Accounts
from .hosts import Host, Link
from .pythons import pyenv_root, pythons
from .registry import cleanup_stale
from .system import TestbedError
from .testbed import Testbed

__all__ = [
    "ACCOUNTS",
    "Account",
    "Accounts",
    "Host",
    "Link",
    "Testbed",
    "TestbedError",
    "cleanup_stale",
    "pyenv_root",
    "pythons",
]
