# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``podman``, ``docker`` and ``buildah`` transports: an interpreter in a container (private module).

Owns: ``Podman``, ``Docker`` and ``Buildah`` (argv, failures in plain words);
``_methods`` names them. The engine's command line client starts the interpreter
in a running container (``podman exec``, ``docker exec``) or in a buildah working
container (``buildah run``) and carries its stdin and stdout:

    <engine_path> [engine_args] exec -i [--user U] [exec_args] CONTAINER <boot>
    <engine_path> [engine_args] run [--user U] [exec_args] CONTAINER -- <boot>

``engine_args`` are the engine's global options (``--url``, ``--host``,
``--connection``, a ``--root``: Ansible's ``ansible_podman_extra_args`` and
``ansible_docker_extra_args`` go there, as the counterparts put them); ``exec_args``
options of ``exec``/``run`` itself (``-e``, ``-w``, ``--privileged``).

No password prompt exists on any of these: the engine runs the command as the
user asked, or fails (become inside the container is a hop of its own, stacked on
this one). So nothing is ever typed and ``on_text`` answers nothing.

The shell around the interpreter waits for it (``reports_status``): the engine
exits with the shell's status, so a killed interpreter (137) is told from the
engine's own failures (``podman``: 125 and up; ``docker``: 1 with "Error response
from daemon"). An interpreter is never looked for on the caller's machine: the
container's own Python is named or discovered in it.

Errors, each naming the container and the engine (``explain``, ``explain_spawn``):
a missing engine binary, a container that does not exist, a stopped one, no Python
in it, a user it does not know, a daemon or API that does not answer.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ._transports import SpecError, Transport


class ContainerTransport(Transport):
    """Base: ``<engine> [engine_args] <subcommand> ... CONTAINER <boot>``."""

    engine = ""
    # the option that names the engine's executable, as the user would set it
    path_hint = ""
    list_command = "ps -a"  # lists the engine's containers
    reports_status = True
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "container": ((str,), None),
        "username": ((str, type(None)), None),
        "engine_path": ((str, type(None)), None),
        "engine_args": ((list,), []),
        "exec_args": ((list,), []),
    }
    # (pattern of the engine's words, reason, hint): the first that matches explains
    _NO_CONTAINER = r"no such container|container not known|no container with name or id"
    _NOT_RUNNING = r"is not running|container state improper|is paused|is restarting"
    _NO_USER = r"unable to find user|no matching entries in passwd|unable to upgrade to tcp, received 500"
    _NO_DAEMON = r"cannot connect to (the )?(docker daemon|podman)|is the docker daemon running|connection refused"

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec.get("container"):
            raise SpecError("%s: option 'container' is required (the container's name or id)" % self.method)
        if self.spec["engine_path"] == "":
            raise SpecError("%s: option 'engine_path' must not be empty" % self.method)

    def engine_path(self) -> str:
        return self.spec["engine_path"] or self.engine

    def describe(self) -> str:
        if self.spec.get("name"):
            return str(self.spec["name"])
        user = self.spec.get("username")
        return "%s:%s%s" % (self.method, "%s@" % user if user else "", self.spec["container"])

    def boot_argv(self, first_stage: str, default_python: str) -> List[str]:
        """The container's Python, named or discovered there: never the caller's own."""
        return super().boot_argv(first_stage, "")

    def argv(self, boot: List[str]) -> List[str]:
        raise NotImplementedError

    def _where(self) -> str:
        return "container %r (%s)" % (self.spec["container"], self.engine_path())

    def explain_spawn(self, program: str, exc: OSError) -> Tuple[str, str]:
        return (
            "cannot run %s for container %r: %s" % (program, self.spec["container"], exc.strerror or exc),
            "install %s on this machine or set its path (%s)" % (self.engine, self.path_hint),
        )

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        text = output.lower()
        name = self.spec["container"]
        engine = self.engine_path()
        if re.search(self._NO_CONTAINER, text):
            return (
                "there is no %s container %r" % (self.engine, name),
                "check the container's name (%s %s) and the engine's settings (%s)" % (engine, self.list_command, self.path_hint),
            )
        if re.search(self._NOT_RUNNING, text):
            return (
                "%s container %r is not running" % (self.engine, name),
                "start it first (%s start %s)" % (engine, name),
            )
        if re.search(self._NO_USER, text) and self.spec.get("username"):
            return (
                "%s container %r has no user %r" % (self.engine, name, self.spec["username"]),
                "set ansible_user to a user that exists in the container",
            )
        if re.search(self._NO_DAEMON, text):
            return ("%s cannot reach its engine for container %r" % (engine, name), "check that the engine's service runs")
        if returncode in (126, 127):
            # podman and docker may drop what the command printed once its input is
            # closed unread: the status alone says it, when the words are lost
            said = ": %s" % _last_line(output) if _last_line(output) else ""
            hint = "install Python 3 in the container, or set ansible_python_interpreter to one it has"
            named = " ".join(self.python_argv(""))
            if named:  # worded as the base's: a raw task then runs without it (the plugins' one-shot path)
                return ("Python interpreter %r was not found or cannot run in %s%s" % (named, self._where(), said), hint)
            tried = " ".join(self.spec.get("python_candidates") or ())
            return ("no Python runs in %s%s" % (self._where(), said), hint + (" (tried: %s)" % tried if tried else ""))
        reason, hint = super().explain(output, returncode)
        return "%s: %s" % (self._where(), reason), hint


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""


class Podman(ContainerTransport):
    """``podman exec -i`` into a running container."""

    method = "podman"
    engine = "podman"
    path_hint = "ansible_podman_executable or mitogen_podman_path"

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        user = ["--user", s["username"]] if s.get("username") else []
        return (
            [self.engine_path()] + list(s["engine_args"]) + ["exec", "-i"] + user + list(s["exec_args"]) + [s["container"]] + boot
        )


class Docker(Podman):
    """``docker exec -i`` into a running container (the same command line as podman's)."""

    method = "docker"
    engine = "docker"
    path_hint = "mitogen_docker_path, or docker on PATH"


class Buildah(ContainerTransport):
    """``buildah run`` in a working container: each start is a new process of its own."""

    method = "buildah"
    engine = "buildah"
    path_hint = "mitogen_buildah_path, or buildah on PATH"
    list_command = "containers"

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        user = ["--user", s["username"]] if s.get("username") else []
        return (
            [self.engine_path()] + list(s["engine_args"]) + ["run"] + user + list(s["exec_args"]) + [s["container"], "--"] + boot
        )
