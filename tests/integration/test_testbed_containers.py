"""The container part of the testbed (``tests/testbed/containers.py``) does what the
container transports' tests rely on: real podman containers from the host's root
filesystem, one without Python, a stopped one, the real docker CLI against podman's
API, the wrapper executables, and removal."""

from __future__ import annotations

import os
import subprocess

from tests.testbed.containers import Podman


def test_a_container_runs_python_and_keeps_its_writes(podman: Podman) -> None:
    name = podman.run("tb-py")
    out = podman.exec(name, "/usr/bin/python3", "-c", "import os; open('/etc/nsm-probe', 'w'); print(os.getuid())")
    assert out.strip() == "0"
    assert not os.path.exists("/etc/nsm-probe"), "the overlay must keep writes inside the container"
    assert podman.pid(name) > 1
    podman.remove(name)
    assert name not in podman.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_a_container_without_python_has_none(podman: Podman) -> None:
    name = podman.run("tb-nopy", python=False)
    try:
        out = podman.exec(name, "sh", "-c", "command -v python3 || echo none")
        assert out.strip() == "none"
    finally:
        podman.remove(name)


def test_a_stopped_container_refuses_exec(podman: Podman) -> None:
    name = podman.run("tb-stopped")
    try:
        podman.stop(name)
        proc = podman.podman("exec", name, "true", check=False)
        assert proc.returncode != 0 and "state" in proc.stderr.lower(), proc.stderr
    finally:
        podman.remove(name)


def test_the_wrapper_executables_reach_the_same_engine(podman_docker: Podman) -> None:
    name = podman_docker.run("tb-wrap")
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("CONTAINERS_CONF", "DOCKER_HOST")}
        for exe in (podman_docker.executable, podman_docker.docker_executable):
            proc = subprocess.run(
                [exe, "exec", "-i", "-u", "nobody", name, "id", "-un"],
                check=False,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert (proc.returncode, proc.stdout.strip()) == (0, "nobody"), (exe, proc.stderr)
    finally:
        podman_docker.remove(name)
