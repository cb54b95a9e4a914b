"""Process and package plumbing for the testbed.

Owns: running external commands with clear errors (`run`), making sure the
system packages and binaries the testbed needs are present (`ensure_system`),
and small /proc helpers (process liveness and start times).  Nothing here knows
about hosts, namespaces or accounts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

#: apt packages the testbed relies on, with one binary each that proves presence.
REQUIRED_PACKAGES: dict[str, str] = {
    "openssh-server": "/usr/sbin/sshd",
    "openssh-client": "/usr/bin/ssh-keygen",
    "sudo": "/usr/bin/sudo",
    "sshpass": "/usr/bin/sshpass",
    "iproute2": "/usr/sbin/ip",
    "util-linux": "/usr/bin/unshare",
    "passwd": "/usr/sbin/useradd",
}

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")

_system_ready = False


class TestbedError(RuntimeError):
    """A testbed operation failed; the message says what and why."""


def run(
    argv: Sequence[str],
    *,
    stdin_text: str | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture output as text, raise TestbedError on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise TestbedError(f"command not found: {argv[0]!r}") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"command timed out after {timeout}s: {list(argv)}") from exc
    if check and proc.returncode != 0:
        raise TestbedError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


def ensure_system() -> None:
    """Install missing packages (apt-get) and create sshd's privsep dir.

    Fast when everything is present: only checks that binaries exist.
    """
    global _system_ready
    if _system_ready:
        return
    if os.geteuid() != 0:
        raise TestbedError("the testbed must run as root (network namespaces, useradd, sshd)")
    missing = [pkg for pkg, binary in REQUIRED_PACKAGES.items() if not os.path.exists(binary)]
    if missing:
        if shutil.which("apt-get") is None:
            raise TestbedError(f"missing packages {missing} and no apt-get to install them")
        env_argv = ["env", "DEBIAN_FRONTEND=noninteractive"]
        proc = run([*env_argv, "apt-get", "install", "-y", "--no-install-recommends", *missing], check=False, timeout=600)
        if proc.returncode != 0:
            run([*env_argv, "apt-get", "update"], timeout=600)
            run([*env_argv, "apt-get", "install", "-y", "--no-install-recommends", *missing], timeout=600)
        still = [pkg for pkg in missing if not os.path.exists(REQUIRED_PACKAGES[pkg])]
        if still:
            raise TestbedError(f"packages still missing after apt-get install: {still}")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    _system_ready = True


def proc_starttime(pid: int) -> int | None:
    """Start time (clock ticks since boot) of pid, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def pid_alive(pid: int, starttime: int | None = None) -> bool:
    """True if pid runs (not a zombie) and, when given, started at starttime."""
    current = proc_starttime(pid)
    if current is None:
        return False
    return starttime is None or current == starttime


def all_pids() -> list[int]:
    """Every pid visible in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]
