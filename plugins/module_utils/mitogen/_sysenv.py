# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""System files a fresh login would read again, followed by a long-lived interpreter (private).

Owns: ``refresh()``, called before every command and module run, which brings this
interpreter up to date with two files that vanilla Ansible's new process for each
task reads afresh:

- ``/etc/environment``: a login reads it through ``pam_env`` (sshd, and sudo/su on
  most systems). When the file changed since this interpreter last looked (its size,
  mtime or inode), it is read again, as ``pam_env`` reads it (``KEY=VALUE`` lines, an
  optional ``export``, one pair of matching quotes around the value stripped, ``#``
  comments; no expansion), and the difference is applied to the start-up
  environment (``STATE.start_env``) that every later command and module starts from:
  variables it sets or changes are set, variables it set before and no longer sets
  are removed. The first look (the interpreter's first task) only takes note: the
  login that started the interpreter read the file then.
- ``/etc/resolv.conf``: when it changed, the C resolver is told to read it again
  (``res_init()``; glibc 2.26 and later also notice by themselves), so that
  ``socket.getaddrinfo`` in a module, and the resolver of this process, use the new
  servers.

Not followed: ``~/.pam_environment``, ``/etc/security/pam_env.conf``, profile
scripts (``/etc/profile``, ``~/.bashrc``: a command run by the login shell reads
those itself), and changes to the file made between the interpreter's start and its
first task.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Dict, Optional, Tuple

from ._state import STATE

LOG = logging.getLogger("ns.mitogen.sysenv")

ENVIRONMENT_FILE = "/etc/environment"
RESOLV_CONF = "/etc/resolv.conf"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCK = threading.Lock()
_UNSEEN = (-1, -1, -1, -1)
_seen: Dict[str, Tuple[int, int, int, int]] = {}
_applied: Dict[str, str] = {}  # what /etc/environment set, as last read


def _version(path: str) -> Tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0, 0)  # missing: a version too
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def parse_environment(text: str) -> Dict[str, str]:
    """The variables ``/etc/environment`` text sets, as ``pam_env`` reads them."""
    found: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not _NAME.match(key):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[key] = value
    return found


def _read_environment() -> Optional[Dict[str, str]]:
    try:
        with open(ENVIRONMENT_FILE, "rb") as fp:
            return parse_environment(fp.read().decode("utf-8", "surrogateescape"))
    except OSError:
        return None if os.path.exists(ENVIRONMENT_FILE) else {}


def _apply_environment(first: bool) -> None:
    found = _read_environment()
    if found is None:
        return  # unreadable here (mode 0600, another user): as pam_env, nothing
    if not first:
        env = STATE.start_env
        for key, value in _applied.items():
            if key not in found and env.get(key) == value:
                env.pop(key, None)
        for key, value in found.items():
            if _applied.get(key) != value or key not in env:
                env[key] = value
        LOG.debug("%s changed: start-up environment updated", ENVIRONMENT_FILE)
    _applied.clear()
    _applied.update(found)


def _reload_resolver() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        res_init = getattr(libc, "__res_init", None) or getattr(libc, "res_init", None)
        if res_init is not None:
            res_init()
            LOG.debug("%s changed: res_init() called", RESOLV_CONF)
    except Exception as exc:  # no ctypes, no libc symbol: glibc >= 2.26 reloads by itself
        LOG.debug("%s changed; res_init() not called: %s", RESOLV_CONF, exc)


def refresh() -> None:
    """Apply what changed in ``/etc/environment`` and ``/etc/resolv.conf`` since the last call."""
    with _LOCK:
        for path in (ENVIRONMENT_FILE, RESOLV_CONF):
            if path == ENVIRONMENT_FILE and not STATE.start_env:
                continue  # not a child context: no start-up environment to keep
            version = _version(path)
            before = _seen.get(path, _UNSEEN)
            if version == before:
                continue
            _seen[path] = version
            if path == ENVIRONMENT_FILE:
                _apply_environment(first=before == _UNSEEN)
            elif before != _UNSEEN:
                _reload_resolver()
