"""The podman, docker and buildah transports (``_containers``) against real engines.

The argv each builds (global options before the subcommand, ``--user``, the exec
options, ``--`` for buildah), and a clear error for each way a start fails, naming the
container and the engine: a missing engine binary, a container that does not exist,
a stopped container, a container without Python (discovered or named), a user the
container does not know. The docker CLI is the real one, against podman's API.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._methods import make
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._transports import SpecError
from tests.testbed.containers import Podman

PY = "/usr/bin/python3"


def test_podman_argv_puts_global_options_first_and_the_container_last() -> None:
    t = make(
        {
            "method": "podman",
            "container": "c1",
            "username": "app",
            "engine_path": "/opt/podman",
            "engine_args": ["--url", "unix:///x.sock"],
            "exec_args": ["-w", "/srv"],
        }
    )
    assert t.argv(["python3", "-c", "x"]) == [
        "/opt/podman",
        "--url",
        "unix:///x.sock",
        "exec",
        "-i",
        "--user",
        "app",
        "-w",
        "/srv",
        "c1",
        "python3",
        "-c",
        "x",
    ]
    assert t.describe() == "podman:app@c1"


def test_docker_argv_defaults_to_docker_on_path() -> None:
    assert make({"method": "docker", "container": "c2"}).argv(["py"]) == ["docker", "exec", "-i", "c2", "py"]


def test_buildah_argv_ends_its_options_with_a_double_dash() -> None:
    t = make({"method": "buildah", "container": "w1", "username": "u", "exec_args": ["--pid=host"]})
    assert t.argv(["py", "-c", "x"]) == ["buildah", "run", "--user", "u", "--pid=host", "w1", "--", "py", "-c", "x"]


def test_a_container_spec_needs_a_container() -> None:
    with pytest.raises(SpecError, match="'container' is required"):
        make({"method": "podman"})
    with pytest.raises(SpecError, match="unknown option"):
        make({"method": "docker", "container": "c", "password": "x"})


def test_the_interpreter_is_never_the_callers_own() -> None:
    """Without a named Python the container's is discovered there, not sys.executable."""
    boot = make({"method": "podman", "container": "c"}).boot_argv("STAGE", "/controller/venv/bin/python")
    assert "/controller/venv/bin/python" not in boot and boot[:2] == ["/bin/sh", "-c"]


@pytest.fixture
def session():
    s = api.Session(connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


def _connect_error(session: api.Session, spec: dict) -> ConnectError:
    with pytest.raises(ConnectError) as info:
        session.connect(spec)
    return info.value


def test_podman_docker_and_buildah_start_an_interpreter_in_the_container(podman_docker: Podman, session) -> None:
    name = podman_docker.run("core-ok")
    work = podman_docker.buildah_from("core-ok-b")
    for spec in (
        {"method": "podman", "container": name, "engine_path": podman_docker.executable},
        {"method": "docker", "container": name, "engine_path": podman_docker.docker_executable, "username": "nobody"},
        {"method": "buildah", "container": work, "engine_path": podman_docker.buildah_executable, "python": PY},
    ):
        ctx = session.connect(spec)
        assert ctx.call(os.getuid) == (65534 if spec.get("username") else 0)
        # the container's own filesystem: its hostname file is not the controller's
        assert ctx.call(os.path.exists, "/run/.containerenv") or spec["method"] == "buildah"
    podman_docker.remove(name)


def test_a_missing_engine_binary_names_the_engine_and_the_container(session) -> None:
    for method in ("podman", "docker", "buildah"):
        err = _connect_error(session, {"method": method, "container": "c9", "engine_path": "/nonexistent/" + method})
        assert err.reason == "cannot run /nonexistent/%s for container 'c9': No such file or directory" % method
        assert err.returncode == 127 and method in err.hint, err


def test_a_container_that_does_not_exist_is_named(podman_docker: Podman, session) -> None:
    for method, exe in (
        ("podman", podman_docker.executable),
        ("docker", podman_docker.docker_executable),
        ("buildah", podman_docker.buildah_executable),
    ):
        err = _connect_error(session, {"method": method, "container": "nsm-no-such", "engine_path": exe})
        assert err.reason == "there is no %s container 'nsm-no-such'" % method, err
        assert err.context == "%s:nsm-no-such" % method


def test_a_stopped_container_says_it_is_not_running(podman_docker: Podman, session) -> None:
    name = podman_docker.run("core-stopped")
    podman_docker.stop(name)
    try:
        for method, exe in (("podman", podman_docker.executable), ("docker", podman_docker.docker_executable)):
            err = _connect_error(session, {"method": method, "container": name, "engine_path": exe})
            assert err.reason == "%s container %r is not running" % (method, name), err
            assert err.hint == "start it first (%s start %s)" % (exe, name)
    finally:
        podman_docker.remove(name)


@pytest.mark.parametrize("python", [None, PY], ids=["discovered", "named"])
def test_a_container_without_python_says_so(podman_docker: Podman, session, python) -> None:
    name = podman_docker.run("core-nopy-%s" % ("named" if python else "disc"), python=False)
    work = podman_docker.buildah_from("core-nopy-b-%s" % ("named" if python else "disc"), python=False)
    try:
        for method, exe, container in (
            ("podman", podman_docker.executable, name),
            ("docker", podman_docker.docker_executable, name),
            ("buildah", podman_docker.buildah_executable, work),
        ):
            spec = {"method": method, "container": container, "engine_path": exe}
            if python:
                spec["python"] = python
            err = _connect_error(session, spec)
            assert err.context == "%s:%s" % (method, container)
            if err.stage == "interpreter":  # discovery's own words arrived: they say what was tried
                assert err.reason.startswith("found no Python 3.") and "python3" in err.reason, err
            elif python:  # worded as the base transport's, which the plugins' raw path knows
                where = "container %r (%s)" % (container, exe)
                assert err.reason.startswith("Python interpreter %r was not found or cannot run in %s" % (PY, where)), err
                assert "install Python 3 in the container" in err.hint
            else:  # the engine dropped discovery's words: the status says it
                assert err.reason.startswith("no Python runs in container %r (%s)" % (container, exe)), err
                assert "install Python 3 in the container" in err.hint
    finally:
        podman_docker.remove(name)


def test_a_user_the_container_lacks_is_named(podman_docker: Podman, session) -> None:
    name = podman_docker.run("core-nouser")
    try:
        for method, exe in (("podman", podman_docker.executable), ("docker", podman_docker.docker_executable)):
            err = _connect_error(session, {"method": method, "container": name, "engine_path": exe, "username": "nsm-nobody"})
            assert err.reason == "%s container %r has no user 'nsm-nobody'" % (method, name), err
    finally:
        podman_docker.remove(name)
