"""The ansible-test connection targets of the container connections, against real engines.

``targets/connection_{podman,docker,buildah}/runme.sh`` run the shared connection
playbook (``targets/connection/test_connection.yml``) with an inventory of real
containers (``tests/testbed/containers.py``): podman containers, the same through the
real docker CLI against podman's Docker-compatible API, and a buildah working
container. Each inventory also holds a host on the counterpart plugin
(``containers.podman.podman``, ``community.docker.docker``,
``containers.podman.buildah``, from the ``ansible`` package: ``scripts/setup``) that
must pass the same playbook, so the checks test the connection, not ns.mitogen's idea
of it. Become is sudo to ``nobody`` inside the container. The three run in the
full matrix (``NSM_FULL_MATRIX=1``): about 1.5 min each here.
"""

from __future__ import annotations

import pytest

from tests.integration.test_connection_targets import host_lines, run_target
from tests.testbed.containers import Podman

COMMON = "ansible_python_interpreter=/usr/bin/python3"
VARS = "connection_become_user=nobody\n"
# a large file of 16 MiB, not 70 (the ssh target's): the counterparts' copies are slow
ARGS = ("-e", "large_file_mib=16")


def _check(recap, hosts) -> None:
    for host in hosts:
        assert recap[host]["failed"] == 0 and recap[host]["unreachable"] == 0 and recap[host]["ok"] >= 18, recap


@pytest.mark.slow  # about 1.5 min: the full matrix only (podman's conformance and differential runs are in CI)
def test_connection_podman_target(podman: Podman, tmp_path):
    ours, theirs = podman.run("tgt-podman-nsm"), podman.run("tgt-podman-builtin")
    exe = "ansible_podman_executable=%s %s" % (podman.executable, COMMON)
    inventory = host_lines(
        "podman",
        [
            "podman-nsm ansible_host=%s ansible_connection=ns.mitogen.podman connection_persistent=true %s" % (ours, exe),
            "podman-builtin ansible_host=%s ansible_connection=containers.podman.podman %s" % (theirs, exe),
        ],
    )
    recap = run_target("connection_podman", inventory + "[podman:vars]\n" + VARS, tmp_path, args=ARGS)
    _check(recap, ("podman-nsm", "podman-builtin"))


@pytest.mark.slow  # about 1.5 min: the full matrix only
def test_connection_docker_target(podman_docker: Podman, tmp_path):
    ours, theirs = podman_docker.run("tgt-docker-nsm"), podman_docker.run("tgt-docker-builtin")
    args = "ansible_docker_extra_args='--host %s' %s" % (podman_docker.docker_host, COMMON)
    inventory = host_lines(
        "docker",
        [
            "docker-nsm ansible_host=%s ansible_connection=ns.mitogen.docker connection_persistent=true %s" % (ours, args),
            "docker-builtin ansible_host=%s ansible_connection=community.docker.docker %s" % (theirs, args),
        ],
    )
    recap = run_target("connection_docker", inventory + "[docker:vars]\n" + VARS, tmp_path, args=ARGS)
    _check(recap, ("docker-nsm", "docker-builtin"))


@pytest.mark.slow  # about 1.5 min: the full matrix only
def test_connection_buildah_target(podman: Podman, tmp_path):
    ours, theirs = podman.buildah_from("tgt-buildah-nsm"), podman.buildah_from("tgt-buildah-builtin")
    inventory = host_lines(
        "buildah",
        [
            "buildah-nsm ansible_host=%s ansible_connection=ns.mitogen.buildah connection_persistent=true %s" % (ours, COMMON),
            "buildah-builtin ansible_host=%s ansible_connection=containers.podman.buildah %s" % (theirs, COMMON),
        ],
    )
    # the built-in plugin runs buildah from PATH: the engine's configuration comes from the environment
    recap = run_target("connection_buildah", inventory + "[buildah:vars]\n" + VARS, tmp_path, env=podman.env, args=ARGS)
    _check(recap, ("buildah-nsm", "buildah-builtin"))
