# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transports through a container engine's own ``exec``: lxc, lxd, incus, jail, kubectl (private module).

Owns: ``Lxc`` (``lxc-attach``), ``Lxd`` (``lxc exec``), ``Incus`` (``incus exec``),
``Jail`` (``jexec``), ``Kubectl`` (``kubectl exec -i``); ``_methods`` names them. Each
builds the engine's command line the way its Ansible counterpart does
(community.general's lxc/lxd/incus/jail, kubernetes.core's kubectl), with the boot
command in place of the counterpart's ``/bin/sh -c CMD``, and turns the engine's
words for its failures (no such container, stopped, no such project or namespace)
into a reason and a hint. The engines' ``exec`` commands exit with the command's
status, so a killed interpreter reads as such (``Transport.explain_loss``).

Prompts: only ``kubectl`` asks (client-go's basic authentication, ``Please enter
Username:`` / ``Please enter Password:`` on stdout, read from stdin): the username
and password given are typed there, on stdin, and the payload follows only once the
interpreter is ready (never read as an answer); with none to give, the connection
fails saying which to set. The password is never put on the
command line (the counterpart passes ``--password``).
"""

from __future__ import annotations

import shlex
from typing import Any, Dict, List, Optional, Tuple

from ._errors import ConnectError
from ._transports import SpecError, Transport

_Options = Dict[str, Tuple[Tuple[type, ...], Any]]
# Every engine's: the container's name, and the engine's program (a name on PATH, or a path).
_COMMON: _Options = {"container": ((str,), None), "engine_path": ((str, type(None)), None)}


class EngineTransport(Transport):
    """Base: ``container`` in an engine whose ``exec`` runs the boot command there."""

    on_this_machine = False  # the container's Python, not ours
    engine = ""  # the default program
    # (words in the engine's output, reason (``%s``: the container), hint)
    failures: List[Tuple[str, str, str]] = []
    options: _Options = {}

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec.get("container"):
            raise SpecError("%s: option 'container' is required" % self.method)

    def program(self) -> str:
        return self.spec.get("engine_path") or self.engine

    def describe(self) -> str:
        if self.spec.get("name"):
            return str(self.spec["name"])
        user = self.spec.get("username")
        return "%s:%s%s" % (self.method, "%s@" % user if user else "", self.spec["container"])

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        for words, reason, hint in self.failures:
            if words in output:
                return reason % self.spec["container"], hint
        return super().explain(output, returncode)


def _as_user(boot: List[str], become: str, user: Optional[str]) -> List[str]:
    """``boot`` run as ``user`` through ``become`` (``su``): ``su USER -c 'BOOT'``, as the counterparts do."""
    if not user or user == "root":
        return boot
    return [become, user, "-c", " ".join(shlex.quote(a) for a in boot)]


class Lxc(EngineTransport):
    """``lxc-attach -n NAME --clear-env -- BOOT`` (the original's lxc method)."""

    method = "lxc"
    engine = "lxc-attach"
    options: _Options = dict(_COMMON)
    failures = [
        ("Failed to get init pid", "LXC container %r is not running", "start it (lxc-start -n NAME)"),
        ("does not exist", "LXC container %r does not exist", "check the container's name (ansible_host)"),
        ("not running", "LXC container %r is not running", "start it (lxc-start -n NAME)"),
    ]

    def argv(self, boot: List[str]) -> List[str]:
        return [self.program(), "-n", self.spec["container"], "--clear-env", "--"] + boot


class Lxd(EngineTransport):
    """``lxc [--project P] exec REMOTE:NAME --mode=non-interactive -- BOOT`` (community.general.lxd)."""

    method = "lxd"
    engine = "lxc"
    options: _Options = {
        **_COMMON,
        "remote": ((str,), "local"),
        "project": ((str, type(None)), None),
        "username": ((str, type(None)), None),
        "become_exe": ((str,), "/bin/su"),
    }
    failures = [
        ("Instance not found", "instance %r not found", "check the instance's name (ansible_host), remote and project"),
        ("Instance is not running", "instance %r is not running", "start it"),
        ("Project not found", "the project of instance %r was not found", "check the project option"),
        ("doesn't exist", "the remote of instance %r is unknown", "check the remote option (lxc remote list)"),
    ]

    def describe(self) -> str:
        if self.spec.get("name"):
            return str(self.spec["name"])
        user = self.spec.get("username")
        return "%s:%s%s:%s" % (self.method, "%s@" % user if user else "", self.spec["remote"], self.spec["container"])

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        argv = [self.program()]
        if s.get("project"):
            argv += ["--project", s["project"]]
        argv += ["exec", "%s:%s" % (s["remote"], s["container"]), "--mode=non-interactive", "--"]
        return argv + _as_user(boot, s["become_exe"], s.get("username"))


class Incus(Lxd):
    """``incus --project P exec REMOTE:NAME --mode=non-interactive -- BOOT`` (community.general.incus)."""

    method = "incus"
    engine = "incus"
    options: _Options = dict(Lxd.options, project=((str,), "default"))


class Jail(EngineTransport):
    """``jexec [-U USER] JAIL BOOT`` (community.general.jail), with ``HOME`` set for the user."""

    method = "jail"
    engine = "jexec"
    options: _Options = dict(_COMMON, username=((str, type(None)), None))
    failures = [
        ("not found", "jail %r not found", "check the jail's name (ansible_host; jls lists them)"),
        ("Operation not permitted", "jexec into jail %r was refused", "run as root on the jail's host"),
    ]

    def argv(self, boot: List[str]) -> List[str]:
        user = self.spec.get("username")
        if not user:
            return [self.program(), self.spec["container"]] + boot
        # jexec -U keeps the jail's environment: HOME as the counterpart sets it
        return [self.program(), "-U", user, self.spec["container"], "/bin/sh", "-c", 'HOME=~%s exec "$@"' % user, "sh"] + boot


class Kubectl(EngineTransport):
    """``kubectl [options] exec -i POD [-c CONTAINER] -- BOOT`` (kubernetes.core.kubectl's options)."""

    method = "kubectl"
    engine = "kubectl"
    examines_stdout = True  # client-go prompts on stdout
    # Its answers are read from stdin: the payload waits for the interpreter's
    # NSM-READY, so that it is never read as a username (one round trip more a start).
    password_on_stdin = True
    options: _Options = {
        **_COMMON,
        "kube_container": ((str, type(None)), None),
        "namespace": ((str, type(None)), None),
        "kubeconfig": ((str, type(None)), None),
        "context": ((str, type(None)), None),
        "server": ((str, type(None)), None),
        "username": ((str, type(None)), None),
        "password": ((str, type(None)), None),
        "token": ((str, type(None)), None),
        "client_cert": ((str, type(None)), None),
        "client_key": ((str, type(None)), None),
        "ca_cert": ((str, type(None)), None),
        "validate_certs": ((bool, type(None)), None),
        "extra_args": ((list,), []),
        # the kubectl process's own environment variables (kubectl_local_env_vars)
        "env": ((dict, type(None)), None),
    }
    _FLAGS = (
        ("namespace", "-n"),
        ("kubeconfig", "--kubeconfig"),
        ("context", "--context"),
        ("server", "--server"),
        ("username", "--username"),
        ("client_cert", "--client-certificate"),
        ("client_key", "--client-key"),
        ("ca_cert", "--certificate-authority"),
        ("token", "--token"),
    )
    failures = [
        ('pods "', "pod %r not found", "check the pod's name (ansible_host or kubectl_pod) and namespace"),
        ('namespaces "', "the namespace of pod %r was not found", "check the kubectl_namespace option"),
        ("container not found", "pod %r has no such container", "check the kubectl_container option"),
        ("cannot exec into a container in a completed pod", "pod %r has completed", "start the pod again"),
        ("does not exist", "the kubeconfig has no such context (pod %r)", "check the kubectl_context option"),
        ("Unauthorized", "the cluster refused the credentials (pod %r)", "check the token, username and password"),
    ]

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        argv = [self.program()]
        if s.get("env"):
            argv = ["env"] + ["%s=%s" % (k, v) for k, v in sorted(s["env"].items())] + argv
        for key, flag in self._FLAGS:
            if s.get(key):
                argv += [flag, s[key]]
        if s.get("validate_certs") is not None:
            argv.append("--insecure-skip-tls-verify=%s" % str(not s["validate_certs"]).lower())
        argv += list(s["extra_args"])
        argv += ["exec", "-i", s["container"]]
        if s.get("kube_container"):
            argv += ["-c", s["kube_container"]]
        return argv + ["--"] + boot

    def on_new_text(self, channel: str, text: str) -> Optional[bytes]:
        tail = text.rstrip()
        for prompt, key, option in (
            ("Please enter Username:", "username", "kubectl_username"),
            ("Please enter Password:", "password", "kubectl_password"),
        ):
            if tail.endswith(prompt):
                value = self.spec.get(key)
                if not value:
                    raise ConnectError(
                        self.describe(),
                        "kubectl asked for a %s (basic authentication) and none was given" % key,
                        "authenticate",
                        text,
                        "set %s, or use a token or a kubeconfig with credentials" % option,
                    )
                return value.encode("utf-8") + b"\n"
        return None
