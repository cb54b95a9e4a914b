"""The setns transport against real podman containers (``tests/testbed/containers.py``).

From inside, the interpreter must see the container and not the host: its hostname,
its mount table, its pid 1 (``sleep infinity``), its root (a file written there stays
there). ``mitogen_kind`` podman and docker (the real docker CLI against podman's
API) both find the container's init pid. Each failure says what it is: not root, a
stopped or unknown container, a missing engine, no Python in the container.
The conformance suite runs it too (``test_conformance.py``, entry ``setns``).
"""

from __future__ import annotations

import os
import socket
from typing import Iterator

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from tests.integration import container_helpers as ch
from tests.integration import remote_helpers as rh
from tests.integration.test_ansible_connection import run_playbook
from tests.testbed.containers import Podman

PY = "/usr/bin/python3"


@pytest.fixture(scope="module")
def box(podman: Podman) -> Iterator[str]:
    name = podman.run("setns", extra=["--hostname", "nsm-setns-box"])
    yield name
    podman.remove(name)


@pytest.fixture
def session():
    s = api.Session(allow_imports=["tests.integration.remote_helpers", ch.__name__], connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


def _spec(podman: Podman, container: str, **kw) -> dict:
    spec = {"method": "setns", "kind": "podman", "container": container, "tool_path": podman.executable, "python": PY}
    spec.update(kw)
    return spec


def test_setns_interpreter_sees_the_containers_hostname_mounts_and_pid_1(podman, box, session):
    ctx = session.connect(_spec(podman, box), None)
    assert ctx.call(socket.gethostname) == "nsm-setns-box" != socket.gethostname()
    assert ctx.call(ch.pid1) == "sleep infinity"
    mounts = ctx.call(ch.mounts)
    assert mounts != ch.mounts() and mounts.split("\n")[0].split()[1] == "/", mounts[:300]
    assert ctx.call(os.getpid) > 1 and ctx.call(os.getpid) != os.getpid()
    # its root is the container's: a file written there is not on the host
    assert ctx.call(ch.write_and_check, "/etc/nsm-setns-probe") and not os.path.exists("/etc/nsm-setns-probe")
    assert "nsm-setns-probe" in podman.exec(box, "ls", "/etc")
    info = ctx.call(rh.identity)
    assert info["uid"] == 0 and info["executable"] == PY


def test_setns_kind_docker_through_the_docker_cli(podman_docker, box, session):
    spec = _spec(podman_docker, box, kind="docker", tool_path=podman_docker.docker_executable)
    ctx = session.connect(spec, None)
    assert ctx.call(socket.gethostname) == "nsm-setns-box"


def test_setns_runs_as_the_user_asked_with_its_home(podman, box, session):
    ctx = session.connect(_spec(podman, box, username="nobody"), None)
    assert ctx.call(os.getuid) == 65534
    assert ctx.call(os.getenv, "USER") == "nobody" and ctx.call(os.getenv, "HOME") == "/nonexistent"
    assert ctx.call(socket.gethostname) == "nsm-setns-box"


def test_setns_discovers_the_containers_python(podman, box, session):
    spec = _spec(podman, box)
    del spec["python"]
    spec["python_candidates"] = ["python3"]
    ctx = session.connect(spec, None)
    assert ctx.call(socket.gethostname) == "nsm-setns-box"


def test_setns_unknown_container_says_so(podman, session):
    with pytest.raises(ConnectError, match=r"found no container 'nsm-no-such-box'") as info:
        session.connect(_spec(podman, "nsm-no-such-box"), None)
    assert "container's name" in info.value.hint


def test_setns_stopped_container_says_so(podman, session):
    name = podman.run("setns-stopped")
    try:
        podman.stop(name)
        with pytest.raises(ConnectError, match=r"container '%s' is not running" % name) as info:
            session.connect(_spec(podman, name), None)
        assert "start the container" in info.value.hint
    finally:
        podman.remove(name)


def test_setns_missing_engine_says_so(podman, box, session):
    with pytest.raises(ConnectError, match=r"cannot run /nonexistent/podman: No such file") as info:
        session.connect(_spec(podman, box, tool_path="/nonexistent/podman"), None)
    assert "mitogen_podman_path" in info.value.hint


def test_setns_container_without_python_says_so(podman, session):
    name = podman.run("setns-nopy", python=False)
    try:
        spec = _spec(podman, name)
        with pytest.raises(ConnectError, match=r"Python interpreter '/usr/bin/python3' was not found"):
            session.connect(spec, None)
        del spec["python"]
        with pytest.raises(ConnectError, match=r"found no Python 3\.\d+ or newer"):
            session.connect(spec, None)
    finally:
        podman.remove(name)


def test_setns_needs_root(podman, box, session):
    nobody = session.sudo(session.local(python=PY), username="nobody", python=PY)
    with pytest.raises(Exception, match=r"joining a container's namespaces needs root \(running as uid 65534\)"):
        session.connect(_spec(podman, box), nobody)


@pytest.mark.testbed
def test_setns_from_an_intermediary_enters_a_container_on_its_host(podman, box, testbed, session):
    """A container behind a remote host: setns run by an intermediary (ssh to h1, sudo to
    root there), with that host's Python and engine; h1 shares this machine's kernel and
    pid namespace, so the container is the controller's podman one."""
    login = session.ssh(
        testbed["h1"].address,
        username=testbed.users.sudo.name,
        identity_file=str(testbed.key),
        known_hosts_file=str(testbed.known_hosts),
        python=PY,
    )
    root = session.sudo(login, username="root", python=PY)
    # its private /tmp has no wrapper: podman inspect needs none of the run configuration
    ctx = session.connect(_spec(podman, box, host_python=PY, tool_path="podman"), root)
    assert ctx.call(socket.gethostname) == "nsm-setns-box"
    assert ctx.call(ch.pid1) == "sleep infinity"
    assert ctx.call(rh.identity)["uid"] == 0


RAW_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.raw: hostname
      register: raw_out
    - ansible.builtin.assert:
        that: raw_out.stdout | trim == 'nsm-setns-nopy'
      delegate_to: localhost
    - ansible.builtin.ping:
"""


def test_setns_connection_runs_raw_without_python_and_module_fails_as_vanilla(podman, tmp_path):
    """ns.mitogen.setns on a container without Python: raw runs there (as when a play
    installs Python), a module fails as vanilla's does (interpreter not found, rc 127)."""
    name = podman.run("setns-raw", python=False, extra=["--hostname", "nsm-setns-nopy"])
    try:
        (tmp_path / "play.yml").write_text(RAW_PLAY)
        inv = tmp_path / "hosts"
        inv.write_text(
            "box ansible_connection=ns.mitogen.setns ansible_host=%s mitogen_kind=podman mitogen_podman_path=%s "
            "ansible_python_interpreter=/usr/bin/python3\n" % (name, podman.executable)
        )
        rc, recap, output = run_playbook(tmp_path, str(inv), str(tmp_path / "play.yml"))
    finally:
        podman.remove(name)
    assert recap["box"]["ok"] == 2 and recap["box"]["failed"] == 1, output[-3000:]
    assert "The module interpreter '/usr/bin/python3' was not found" in output, output[-3000:]
