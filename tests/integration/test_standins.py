"""The transports of engines that cannot run here, against stand-in executables.

LXC, LXD, Incus, FreeBSD jails, Kubernetes and systemd machines cannot run on this
machine: ``tests/integration/standins/`` holds a stand-in per engine tool that records
its argv, checks it has the engine's shape, simulates the engine's failures with its
own words (``missing``, ``stopped``, ``nope``) and otherwise runs the command locally.
So these tests show the command line each option gives, that each failure is
explained, and kubectl's prompts; they do not show that a real engine accepts it
(hence the names: ``test_standin_<engine>_...``). machinectl and setns' ``lxc`` kind
go through setns into a real podman container, the stand-in giving its init pid.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from tests.integration import remote_helpers as rh
from tests.testbed.accounts import ensure_accounts
from tests.testbed.containers import Podman

STANDINS = Path(__file__).resolve().parent / "standins"
PY = "/usr/bin/python3"


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "standin.log"
    monkeypatch.setenv("NSM_STANDIN_LOG", str(path))
    return path


@pytest.fixture
def session() -> Iterator[api.Session]:
    s = api.Session(allow_imports=["tests.integration.remote_helpers"], connect_timeout=20)
    try:
        yield s
    finally:
        s.close()


def calls(log: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def spec(method: str, tool: str, container: str, **kw: Any) -> Dict[str, Any]:
    return dict({"method": method, "container": container, "engine_path": str(STANDINS / tool), "python": PY}, **kw)


def start(session: api.Session, log: Path, s: Dict[str, Any]) -> List[str]:
    """Start ``s``, check that it runs (as root, locally), return the stand-in's argv before the boot command."""
    ctx = session.connect(s, None)
    assert ctx.call(rh.identity)["uid"] == 0
    argv = calls(log)[-1]["argv"]
    return argv[: argv.index(PY)]


# -- lxc (lxc-attach) --------------------------------------------------------------------
def test_standin_lxc_argv(session, log):
    assert start(session, log, spec("lxc", "lxc-attach", "web1")) == ["-n", "web1", "--clear-env", "--"]


@pytest.mark.parametrize(
    "name, reason",
    [("missing", "LXC container 'missing' does not exist"), ("stopped", "LXC container 'stopped' is not running")],
)
def test_standin_lxc_failures_are_explained(session, log, name, reason):
    with pytest.raises(ConnectError, match=reason):
        session.connect(spec("lxc", "lxc-attach", name), None)


def test_standin_lxc_missing_engine_says_so(session):
    with pytest.raises(ConnectError, match=r"cannot run /nonexistent/lxc-attach: No such file"):
        session.connect(dict(spec("lxc", "lxc-attach", "web1"), engine_path="/nonexistent/lxc-attach"), None)


# -- lxd, incus -----------------------------------------------------------------------
@pytest.mark.parametrize("method, tool", [("lxd", "lxc"), ("incus", "incus")])
def test_standin_lxd_and_incus_argv_per_option(session, log, method, tool):
    project = [] if method == "lxd" else ["--project", "default"]  # incus' counterpart always names it
    assert start(session, log, spec(method, tool, "web1")) == project + [
        "exec",
        "local:web1",
        "--mode=non-interactive",
        "--",
    ]
    got = start(session, log, spec(method, tool, "web1", remote="cluster", project="web"))
    assert got == ["--project", "web", "exec", "cluster:web1", "--mode=non-interactive", "--"]
    assert calls(log)[-1]["tool"] == tool


@pytest.mark.parametrize("method, tool", [("lxd", "lxc"), ("incus", "incus")])
def test_standin_lxd_and_incus_run_as_a_user_through_su(session, log, method, tool):
    user = ensure_accounts().key
    ctx = session.connect(spec(method, tool, "web1", username=user.name), None)
    assert ctx.call(rh.identity)["uid"] == user.uid
    argv = calls(log)[-1]["argv"]
    assert argv[argv.index("--") + 1 : argv.index("--") + 4] == ["/bin/su", user.name, "-c"]


@pytest.mark.parametrize("method, tool", [("lxd", "lxc"), ("incus", "incus")])
@pytest.mark.parametrize(
    "options, reason",
    [
        ({"container": "missing"}, "instance 'missing' not found"),
        ({"container": "stopped"}, "instance 'stopped' is not running"),
        ({"project": "nope"}, "the project of instance 'web1' was not found"),
        ({"remote": "nope"}, "the remote of instance 'web1' is unknown"),
    ],
)
def test_standin_lxd_and_incus_failures_are_explained(session, log, method, tool, options, reason):
    with pytest.raises(ConnectError, match=reason):
        session.connect(dict(spec(method, tool, "web1"), **options), None)


# -- jail (jexec) ------------------------------------------------------------------------
def test_standin_jail_argv_and_user(session, log):
    assert start(session, log, spec("jail", "jexec", "www")) == ["www"]
    user = ensure_accounts().key
    ctx = session.connect(spec("jail", "jexec", "www", username=user.name), None)
    assert ctx.call(rh.identity)["uid"] == user.uid
    assert ctx.call(os.getenv, "HOME") == os.path.expanduser("~" + user.name)
    assert calls(log)[-1]["argv"][:3] == ["-U", user.name, "www"]


def test_standin_jail_unknown_jail_is_explained(session, log):
    with pytest.raises(ConnectError, match="jail 'missing' not found"):
        session.connect(spec("jail", "jexec", "missing"), None)


# -- kubectl -----------------------------------------------------------------------------
def test_standin_kubectl_argv_per_option(session, log, monkeypatch):
    assert start(session, log, spec("kubectl", "kubectl", "web-0")) == ["exec", "-i", "web-0", "--"]
    monkeypatch.setenv("NSM_STANDIN_ENV", "NSM_KUBE_PROBE")
    every = spec(
        "kubectl",
        "kubectl",
        "web-0",
        kube_container="app",
        namespace="web",
        kubeconfig="/etc/kube.conf",
        context="prod",
        server="https://k8s:6443",
        token="s3cret-token",
        client_cert="/c.pem",
        client_key="/k.pem",
        ca_cert="/ca.pem",
        validate_certs=False,
        extra_args=["--request-timeout=5s"],
        env={"NSM_KUBE_PROBE": "on"},
    )
    assert start(session, log, every) == [
        "-n",
        "web",
        "--kubeconfig",
        "/etc/kube.conf",
        "--context",
        "prod",
        "--server",
        "https://k8s:6443",
        "--client-certificate",
        "/c.pem",
        "--client-key",
        "/k.pem",
        "--certificate-authority",
        "/ca.pem",
        "--token",
        "s3cret-token",
        "--insecure-skip-tls-verify=true",
        "--request-timeout=5s",
        "exec",
        "-i",
        "web-0",
        "-c",
        "app",
        "--",
    ]
    assert calls(log)[-1]["env"] == {"NSM_KUBE_PROBE": "on"}


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"container": "missing"}, "pod 'missing' not found"),
        ({"container": "stopped"}, "pod 'stopped' has completed"),
        ({"namespace": "nope"}, "the namespace of pod 'web-0' was not found"),
        ({"kube_container": "missing"}, "pod 'web-0' has no such container"),
        ({"context": "nope"}, "the kubeconfig has no such context"),
    ],
)
def test_standin_kubectl_failures_are_explained(session, log, options, reason):
    with pytest.raises(ConnectError, match=reason):
        session.connect(dict(spec("kubectl", "kubectl", "web-0"), **options), None)


def test_standin_kubectl_basic_auth_prompts_are_answered(session, log, monkeypatch):
    monkeypatch.setenv("NSM_STANDIN_KUBE_AUTH", "admin:pa55 word")
    ctx = session.connect(spec("kubectl", "kubectl", "web-0", username="admin", password="pa55 word"), None)
    assert ctx.call(rh.echo, "in") == "in"
    assert "--username" in calls(log)[-1]["argv"] and "pa55 word" not in " ".join(calls(log)[-1]["argv"])


def test_standin_kubectl_username_prompt_without_a_username_fails_clearly(session, log, monkeypatch):
    monkeypatch.setenv("NSM_STANDIN_KUBE_AUTH", "admin:pa55")
    with pytest.raises(ConnectError, match=r"kubectl asked for a username"):
        session.connect(spec("kubectl", "kubectl", "web-0", password="pa55"), None)


def test_standin_kubectl_prompt_without_credentials_fails_clearly(session, log, monkeypatch):
    monkeypatch.setenv("NSM_STANDIN_KUBE_AUTH", "admin:pa55")
    with pytest.raises(ConnectError, match=r"kubectl asked for a username \(basic authentication\) and none was given") as info:
        session.connect(spec("kubectl", "kubectl", "web-0"), None)
    assert "kubectl_username" in info.value.hint


def test_standin_kubectl_wrong_password_is_explained(session, log, monkeypatch):
    monkeypatch.setenv("NSM_STANDIN_KUBE_AUTH", "admin:pa55")
    with pytest.raises(ConnectError, match=r"the cluster refused the credentials") as info:
        session.connect(spec("kubectl", "kubectl", "web-0", username="admin", password="wrong"), None)
    assert "wrong" not in str(info.value) + (info.value.output or "")


# -- machinectl and lxc-info: setns into a real container, the stand-in giving its pid -----
@pytest.fixture(scope="module")
def machine(podman: Podman) -> Iterator[str]:
    name = podman.run("standin-machine", extra=["--hostname", "nsm-machine"])
    yield name
    podman.remove(name)


@pytest.mark.parametrize("kind, tool", [("machinectl", "machinectl"), ("lxc", "lxc-info")])
def test_standin_setns_kinds_find_the_init_pid_and_enter(session, log, monkeypatch, podman, machine, kind, tool):
    monkeypatch.setenv("NSM_STANDIN_MACHINES", "build=%d,idle=0" % podman.pid(machine))
    base = {"method": "setns", "kind": kind, "tool_path": str(STANDINS / tool), "python": PY}
    ctx = session.connect(dict(base, container="build"), None)
    assert ctx.call(socket.gethostname) == "nsm-machine"
    assert calls(log)[-1]["argv"] == (["show", "-p", "Leader", "--", "build"] if kind == "machinectl" else ["-n", "build", "-pH"])
    with pytest.raises(ConnectError, match="found no container 'unknown'"):
        session.connect(dict(base, container="unknown"), None)
    with pytest.raises(ConnectError, match="container 'idle' is not running"):
        session.connect(dict(base, container="idle"), None)
