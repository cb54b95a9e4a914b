"""Every transport against the one conformance suite (``conformance.py``).

Transports: ``local``; ``ssh`` (nsm-key on h1); ``sudo-ssh`` (sudo to root from
nsm-sudo's ssh login on h1); ``su-ssh`` (su to nsm-su with its password from
nsm-key's ssh login on h1); ``doas-ssh`` (doas to root with nsm-sudopw's password,
from its ssh login on h1); ``su-local`` (su to nsm-key from a local interpreter run
as root); ``sudo-local`` (sudo to nsm-key from a local
interpreter run as root); ``ssh-bastion`` (nsm-sudo on h3, which only h2 can
reach, through an ssh login on h2); ``podman``, ``docker`` (the real docker CLI on
podman's API), ``buildah`` (real containers on the controller) and ``podman-bastion``
(the same podman container, from root on h2: ssh to h2 is the hop, then sudo and
podman); ``setns`` (into a real podman container's namespaces by its init pid, as root
on the controller); ``standin-lxc``, ``-lxd``, ``-incus``, ``-jail``, ``-kubectl``: those
transports through the stand-in engines (the interpreter runs here). Adding one: see
``conformance.py``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from tests.integration import conformance
from tests.integration import remote_helpers as rh
from tests.integration.conformance import Opened, Transport, pid_in_host, program_of_via
from tests.testbed.containers import Podman
from tests.testbed.containers import unavailable_reason as containers_unavailable_reason
from tests.testbed.testbed import Testbed
from tests.unavailable import unavailable

PY = "/usr/bin/python3"  # the testbed's hosts share /usr with the controller: the same Python
_MAJOR, _MINOR = (int(n) for n in subprocess.check_output([PY, "-c", "import sys; print(*sys.version_info[:2])"]).split())
VERSION = (_MAJOR, _MINOR)


def _ssh(tb: Testbed, host: str, user: str, via: Optional[api.Context] = None) -> Callable[[api.Session], api.Context]:
    keys: Dict[str, Any] = {} if via else {"identity_file": str(tb.key), "known_hosts_file": str(tb.known_hosts)}
    return lambda s: s.ssh(tb[host].address, username=user, via=via, python=PY, **keys)


def _sudo(user: str) -> Callable[[api.Session, Optional[api.Context]], api.Context]:
    def open_sudo(s: api.Session, via: Optional[api.Context]) -> api.Context:
        assert via is not None, "sudo is stacked on another context"
        return s.sudo(via=via, username=user)

    return open_sudo


def _become(method: str, user: str, password: Optional[str]) -> Callable[[api.Session, Optional[api.Context]], api.Context]:
    """su or doas, typing ``password`` at the tool's prompt (on the private pty, or stdin)."""

    def open_become(s: api.Session, via: Optional[api.Context]) -> api.Context:
        assert via is not None, "%s is stacked on another context" % method
        spec = {"method": method, "username": user, "python": PY}
        if password is not None:
            spec["password"] = password
        return s.connect(spec, via)

    return open_become


def _ssh_via(tb: Testbed, host: str, user: str) -> Callable[[api.Session, Optional[api.Context]], api.Context]:
    return lambda s, via: s.ssh(tb[host].address, username=user, via=via, python=PY)


# name -> the transport, given the session's testbed (None for those in LOCAL_ONLY)
TRANSPORTS: Dict[str, Callable[[Any], Transport]] = {
    "local": lambda tb: Transport("local", open=lambda s, via: s.local(python=PY), uid=os.getuid(), python=PY, version=VERSION),
    "ssh": lambda tb: Transport(
        "ssh", open=lambda s, via: _ssh(tb, "h1", tb.users.key.name)(s), uid=tb.users.key.uid, python=PY, version=VERSION
    ),
    "sudo-ssh": lambda tb: Transport(
        "sudo-ssh",
        open_via=_ssh(tb, "h1", tb.users.sudo.name),
        open=_sudo("root"),
        uid=0,
        python=PY,
        version=VERSION,
        carrier=program_of_via,  # sudo's child inherits the pipes: killing sudo cuts nothing
    ),
    "sudo-local": lambda tb: Transport(
        "sudo-local",
        open_via=lambda s: s.local(python=PY),
        open=_sudo(tb.users.key.name),
        uid=tb.users.key.uid,
        python=PY,
        version=VERSION,
        carrier=program_of_via,
    ),
    "su-ssh": lambda tb: Transport(
        "su-ssh",
        open_via=_ssh(tb, "h1", tb.users.key.name),
        open=_become("su", tb.users.su.name, tb.users.su.password),
        uid=tb.users.su.uid,
        python=PY,
        version=VERSION,
        carrier=program_of_via,  # su's child inherits the pipes: killing su cuts nothing
    ),
    "doas-ssh": lambda tb: Transport(
        "doas-ssh",
        open_via=_ssh(tb, "h1", tb.users.sudopw.name),
        open=_become("doas", "root", tb.users.sudopw.password),
        uid=0,
        python=PY,
        version=VERSION,
        carrier=program_of_via,  # Debian's doas (PAM) forks and waits: as with su
    ),
    "su-local": lambda tb: Transport(
        "su-local",
        open_via=lambda s: s.local(python=PY),
        open=_become("su", tb.users.key.name, None),  # root: PAM asks nothing
        uid=tb.users.key.uid,
        python=PY,
        version=VERSION,
        carrier=program_of_via,
    ),
    "ssh-bastion": lambda tb: Transport(
        "ssh-bastion",
        open_via=_ssh(tb, "h2", tb.users.sudo.name),
        open=_ssh_via(tb, "h3", tb.users.sudo.name),
        uid=tb.users.sudo.uid,
        python=PY,
        version=VERSION,
    ),
    "setns": lambda tb: Transport(
        "setns",
        open=lambda s, via: s.connect(_setns_spec(tb), via),
        uid=0,
        python=PY,
        version=VERSION,
        host_pid=pid_in_host,  # the container's own PID namespace
    ),
}
STANDINS = Path(__file__).resolve().parent / "standins"
# Engines that cannot run here, through their stand-in (tests/integration/standins/),
# which runs the interpreter on this machine: the transport's own part (argv, exit
# status, the engine process as the stream's carrier) is what these entries test.
# machinectl has none: it is setns (the entry above), its stand-in giving only a pid.


def _standin(method: str, tool: str) -> Callable[[Any], Transport]:
    spec = {"method": method, "container": "c1", "engine_path": str(STANDINS / tool), "python": PY}
    return lambda tb: Transport(
        "standin-" + method, open=lambda s, via: s.connect(spec, via), uid=os.getuid(), python=PY, version=VERSION
    )


for _method, _tool in (("lxc", "lxc-attach"), ("lxd", "lxc"), ("incus", "incus"), ("jail", "jexec"), ("kubectl", "kubectl")):
    TRANSPORTS["standin-" + _method] = _standin(_method, _tool)
# the others need the testbed (its hosts, or its accounts)
LOCAL_ONLY = {"local"} | {n for n in TRANSPORTS if n.startswith("standin-")}
# the stand-ins of lxd, incus and jail differ from lxc's only in the argv (test_standins.py)
FULL_MATRIX_ONLY = {"standin-lxd", "standin-incus", "standin-jail"}
PODMAN = {"setns"}  # the others need the podman fixture (a container)


def _setns_spec(engine: Any) -> Dict[str, Any]:
    name = engine.full_name("conformance-setns")
    if name not in engine.podman("ps", "--format", "{{.Names}}").stdout.split():
        engine.remove(name)
        engine.run("conformance-setns")
    return {"method": "setns", "kind": "podman", "container": name, "tool_path": engine.executable, "python": PY}


def _container(
    method: str, engine_path: str, container: str, **kw: Any
) -> Callable[[api.Session, Optional[api.Context]], api.Context]:
    spec = {"method": method, "container": container, "engine_path": engine_path, "python": PY, **kw}
    return lambda s, via: s.connect(spec, via)


# container context id -> the root context that started its engine's client
_ROOT_OF: Dict[int, api.Context] = {}


def _container_as_root(open_container: Callable[[api.Session, Optional[api.Context]], api.Context]) -> Any:
    """``open_container`` from root (rootful podman) on the machine of ``via``: sudo, then the container."""

    def open_it(s: api.Session, via: Optional[api.Context]) -> api.Context:
        assert via is not None
        root = s.sudo(via=via, username="root", python=PY)
        ctx = open_container(s, root)
        _ROOT_OF[ctx.context_id] = root
        return ctx

    return open_it


def _engine_client(session: api.Session, opened: Opened) -> Tuple[int, str]:
    """The carrier of a container behind sudo: the engine's client, root's child."""
    return _ROOT_OF[opened.ctx.context_id].call(rh.transport_pid, opened.ctx.context_id), opened.ctx.name


# Containers (``tests/testbed/containers.py``), sharing the controller's PID namespace
# (``--pid=host``) so that the checks may signal the pids the targets report.
# name -> the transport, given the testbed and ``Engine``
CONTAINER_TRANSPORTS: Dict[str, Callable[[Any, "Engine"], Transport]] = {
    "podman": lambda tb, e: Transport(
        "podman", open=_container("podman", e.podman.executable, e.container), uid=0, python=PY, version=VERSION
    ),
    # the real docker CLI against podman's Docker-compatible API
    "docker": lambda tb, e: Transport(
        "docker", open=_container("docker", e.podman.docker_executable, e.container), uid=0, python=PY, version=VERSION
    ),
    "buildah": lambda tb, e: Transport(
        "buildah",
        open=_container("buildah", e.podman.buildah_executable, e.working, exec_args=["--pid=host"]),
        uid=0,
        python=PY,
        version=VERSION,
    ),
    # the container on a remote host, reached as root there through ssh and sudo
    "podman-bastion": lambda tb, e: Transport(
        "podman-bastion",
        open_via=_ssh(tb, "h2", tb.users.sudo.name),
        open=_container_as_root(_container("podman", e.podman.host_executable(), e.container)),
        uid=0,
        python=PY,
        version=VERSION,
        carrier=_engine_client,
    ),
}


class Engine:
    """The conformance run's containers: one podman container, one buildah working container.

    The engine's state (its configuration, the wrapper executables) lives under
    /var/tmp, which the testbed's hosts share with the controller (their /tmp is
    their own), so a podman client on a host reaches the same containers.
    """

    def __init__(self, podman: Podman) -> None:
        self.podman: Podman = podman
        self.container: str = podman.run("conformance", extra=["--pid=host"])
        self.working: str = podman.buildah_from("conformance-b")


@pytest.fixture(scope="session")
def engine() -> Any:
    reason = containers_unavailable_reason()
    if reason is not None:
        unavailable(reason)
    podman = Podman(state_dir=tempfile.mkdtemp(prefix="nsm-conformance-", dir="/var/tmp"))
    try:
        podman.docker_api()
        yield Engine(podman)
    finally:
        podman.close()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(
            n,
            marks=(() if n in LOCAL_ONLY | PODMAN else (pytest.mark.testbed,))
            + ((pytest.mark.slow,) if n in FULL_MATRIX_ONLY else ()),
        )
        for n in [*TRANSPORTS, *CONTAINER_TRANSPORTS]
    ],
)
def transport(request) -> Transport:
    """Session scope: the testbed it may start is up before ``no_leaks`` looks."""
    if request.param in PODMAN:
        return TRANSPORTS[request.param](request.getfixturevalue("podman"))
    tb = None if request.param in LOCAL_ONLY else request.getfixturevalue("testbed")
    if request.param in CONTAINER_TRANSPORTS:
        return CONTAINER_TRANSPORTS[request.param](tb, request.getfixturevalue("engine"))
    return TRANSPORTS[request.param](tb)


@pytest.fixture
def session():
    s = api.Session(allow_imports=[conformance.HELPERS], connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(
    "check",
    [pytest.param(fn, id=fn.__name__, marks=pytest.mark.slow if slow else ()) for fn, slow in conformance.CHECKS],
)
def test_conformance(transport, session, tmp_path, check):
    check(transport, session, tmp_path)
