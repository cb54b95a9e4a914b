"""Real podman containers (and the real docker CLI against podman's API) for tests.

Owns: `Podman`, one test run's container engine setup:

* a private ``containers.conf`` with the settings this sandbox needs (TESTBED.md:
  runc, cgroupfs, no default ulimits), passed by ``CONTAINERS_CONF``;
* wrapper executables ``bin/podman`` and ``bin/docker`` that carry that setting (and,
  for docker, ``DOCKER_HOST`` pointing at podman's Docker-compatible API), for the
  places where no environment can be passed (a connection's ``*_executable`` option, a
  command run on a testbed host over ssh);
* containers made from the host's root filesystem as an overlay (``--rootfs /:O``: no
  image and no registry needed; writes stay in the container), without a network;
  ``python=False`` hides every Python in the container's overlay;
* podman's Docker API service (``podman system service``), started on first use;
* removal of all of it (``close``), and ``cleanup_stale()`` for containers of dead runs.

Container names carry the run's prefix (``nsm-<pid>-<n>-``) so runs side by side never
collide; ``full_name()`` gives the engine's name for a short one.

Needs root (rootful podman) and podman + runc installed (``scripts/setup`` installs them).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from .system import TestbedError, pid_alive

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
NAME_RE = re.compile(r"^nsm-(\d+)-\d+-")
_serial = itertools.count(1)
_serial_lock = threading.Lock()
# Every Python a container could find: hidden for python=False.
_PYTHON_GLOBS = ("/usr/bin/python*", "/usr/local/bin/python*", "/bin/python*")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the container tests, or None."""
    if os.geteuid() != 0:
        return "the container tests need root (rootful podman)"
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"the container tests need {tool} (scripts/setup installs it)"
    return None


def _wrapper(path: Path, env: dict[str, str], program: str) -> Path:
    lines = ["#!/bin/sh"] + [f"export {k}='{v}'" for k, v in sorted(env.items())] + [f'exec {program} "$@"', ""]
    path.write_text("\n".join(lines))
    path.chmod(0o755)
    return path


class Podman:
    """One run's podman setup; a context manager (``close`` removes everything)."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise TestbedError(reason)
        with _serial_lock:
            self.prefix = f"nsm-{os.getpid()}-{next(_serial)}-"
        self.dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix=self.prefix))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.env = {"CONTAINERS_CONF": str(self.conf)}
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        self.podman_path = shutil.which("podman") or "podman"
        self.executable = str(_wrapper(bin_dir / "podman", self.env, self.podman_path))
        self.api_socket = self.dir / "api.sock"
        self.docker_host = f"unix://{self.api_socket}"
        self.docker_executable = str(
            _wrapper(bin_dir / "docker", {"DOCKER_HOST": self.docker_host}, shutil.which("docker") or "docker")
        )
        self._service: subprocess.Popen[bytes] | None = None
        self._names: list[str] = []

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def podman(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS`` with this run's configuration."""
        env = dict(os.environ, **self.env)
        proc = subprocess.run([self.podman_path, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise TestbedError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def full_name(self, name: str) -> str:
        """The engine's name of this run's container ``name``."""
        return name if name.startswith(self.prefix) else self.prefix + name

    def run(self, name: str, *, python: bool = True, extra: Sequence[str] = ()) -> str:
        """Start container ``name`` (the host's root fs as an overlay); return its full name."""
        full = self.full_name(name)
        self.podman("run", "-d", "--name", full, "--network=none", *extra, "--rootfs", "/:O", "sleep", "infinity")
        self._names.append(full)
        if not python:
            self.exec(full, "sh", "-c", "rm -f " + " ".join(_PYTHON_GLOBS))
        return full

    def exec(self, name: str, *argv: str, user: str | None = None) -> str:
        """Run ``argv`` in container ``name``; its stdout."""
        user_args = ["--user", user] if user else []
        return self.podman("exec", *user_args, self.full_name(name), *argv).stdout

    def pid(self, name: str) -> int:
        """The container's init process id, as seen from the host."""
        return int(self.podman("inspect", "-f", "{{.State.Pid}}", self.full_name(name)).stdout.strip())

    def stop(self, name: str) -> None:
        self.podman("stop", "-t", "0", self.full_name(name))

    def start(self, name: str) -> None:
        self.podman("start", self.full_name(name))

    def remove(self, name: str) -> None:
        full = self.full_name(name)
        self.podman("rm", "-f", "-t", "0", full, check=False)
        if full in self._names:
            self._names.remove(full)

    def docker_api(self) -> str:
        """Start podman's Docker-compatible API service (once); its ``DOCKER_HOST``."""
        if self._service is None:
            env = dict(os.environ, **self.env)
            self._service = subprocess.Popen(
                [self.podman_path, "system", "service", "--time=0", self.docker_host],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while not self.api_socket.exists():
                if self._service.poll() is not None or time.monotonic() > deadline:
                    raise TestbedError(f"podman system service did not listen on {self.api_socket}")
                time.sleep(0.05)
        return self.docker_host

    def close(self) -> None:
        """Remove this run's containers, stop the API service, remove the state dir."""
        for full in list(self._names):
            self.remove(full)
        if self._service is not None:
            try:
                os.killpg(self._service.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self._service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._service.pid, signal.SIGKILL)
                self._service.wait()
            self._service = None
        shutil.rmtree(self.dir, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Remove containers of runs whose process is dead; return what was removed."""
    if shutil.which("podman") is None or os.geteuid() != 0:
        return []
    removed = []
    with tempfile.NamedTemporaryFile("w", prefix="nsm-containers-", suffix=".conf") as conf:
        conf.write(CONTAINERS_CONF)
        conf.flush()
        env = dict(os.environ, CONTAINERS_CONF=conf.name)
        names = subprocess.run(
            ["podman", "ps", "-a", "--format", "{{.Names}}"], check=False, env=env, capture_output=True, text=True, timeout=60
        ).stdout.split()
        for name in names:
            match = NAME_RE.match(name)
            if match and not pid_alive(int(match[1])):
                subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=False, env=env, capture_output=True, timeout=60)
                removed.append(f"container {name}")
    return removed
