# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``ns.mitogen.podman``, ``ns.mitogen.docker`` and ``ns.mitogen.buildah`` share (private).

Owns: ``ContainerConnection``, the plugin base that turns the counterparts' options
(``containers.podman.podman``, ``community.docker.docker``,
``containers.podman.buildah``) into a container hop spec (``_containers`` in the
core): the container (``remote_addr``), the user (``remote_user``), the engine's path
(the original product's ``mitogen_<engine>_path`` when set, else the plugin's own
executable option, else the engine's name on PATH), its global options (the
counterparts' ``*_extra_args``) and ``exec`` options (docker's ``extra_env``,
``working_dir``, ``privileged``). A raw command where no Python runs goes through
the same command line, once (``_oneshot``), as the counterpart runs it.

Everything else (become inside the container, ``mitogen_via`` to reach a remote
engine, put/fetch, modules) is the shared ``MitogenConnectionBase``'s.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleOptionsError

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase
from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words


class ContainerConnection(MitogenConnectionBase):
    """ns.mitogen in a container, through its engine's command line client."""

    # the plugin's option naming the engine's executable (None: the engine on PATH)
    executable_option: Optional[str] = None
    # the plugin's option holding the engine's global options
    extra_args_option: Optional[str] = None

    def _remote_user(self) -> Optional[str]:
        user = self.get_option("remote_user")
        return str(user) if user else None

    def _engine_path(self) -> str:
        path = self.get_option("mitogen_%s_path" % self.method) if self.has_option("mitogen_%s_path" % self.method) else None
        if not path and self.executable_option:
            path = self.get_option(self.executable_option)
        return str(path or self.method)

    def _engine_args(self) -> List[str]:
        value = self.get_option(self.extra_args_option) if self.extra_args_option else None
        return split_words(str(value)) if value else []

    def _exec_args(self) -> List[str]:
        """Options of ``exec``/``run`` itself (none by default)."""
        return []

    def _connect_timeout(self) -> int:
        return self._timeout()

    def _login_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {
            "method": self.method,
            "container": str(self.get_option("remote_addr")),
            "engine_path": self._engine_path(),
            "engine_args": self._engine_args(),
            "exec_args": self._exec_args(),
            "connect_timeout": self._connect_timeout(),
        }
        user = self._remote_user()
        if user:
            spec["username"] = user
        return self._with_python(spec)

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        return plugin_utils.load("_oneshot").transport_argv(spec, ["/bin/sh", "-c", cmd])


def env_args(value: Any, label: str) -> List[str]:
    """``-e K=V`` for each of ``value``'s items; a value that is not a string refused, as the counterpart does."""
    args: List[str] = []
    for key, item in dict(value or {}).items():
        if not isinstance(item, str):
            raise AnsibleOptionsError(
                "%s: non-string %s found for the extra_env option; quote ambiguous values (booleans, numbers) "
                "so they stay strings" % (label, type(item).__name__)
            )
        args += ["-e", "%s=%s" % (key, item)]
    return args
