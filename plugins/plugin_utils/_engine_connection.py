# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plugin base of the connections into a container by its engine: setns, machinectl,
lxc, lxd, incus, jail, kubectl (private).

Owns: ``EngineConnectionBase``: the login spec from the plugin's ``_engine_spec()``
(the container and the engine's options, in the core's spec keys) plus the
interpreter setting; the one-shot argv (``raw`` without Python: the engine runs
``/bin/sh -c CMD`` in the container, as the counterpart plugins do); the user the
tasks run as; and ``first_set``, which reads the first of several options set (the
counterpart's own, then the original product's ``mitogen_*_path``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.plugin_utils import _options
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase


class EngineConnectionBase(MitogenConnectionBase):
    """A connection whose login is one engine command into a container."""

    # the spec's option holding the user, when the engine can run as one
    user_option = "remote_user"

    def _engine_spec(self) -> Dict[str, Any]:
        """The core spec without the interpreter: method, container, engine options."""
        raise NotImplementedError

    def _instance_spec(self) -> Dict[str, Any]:
        """lxd's and incus's spec: the same ``exec`` and options, each plugin's under its
        own name (``<method>_become_method``, ``<method>_executable``)."""
        spec: Dict[str, Any] = {"method": self.method, "container": self._container()}
        spec["remote"] = self.first_set("remote") or "local"
        project = self.first_set("project")
        if project:
            spec["project"] = project
        spec["become_exe"] = self.first_set("%s_become_method" % self.method) or "/bin/su"
        user = self._remote_user()
        if user:
            spec["username"] = user
        path = self.first_set("%s_executable" % self.method)
        if path:
            spec["engine_path"] = path
        return spec

    def first_set(self, *options: str) -> Optional[str]:
        """The first of ``options`` this plugin has and that is set, as a string."""
        for option in options:
            if self.has_option(option):
                value = _options.native(self.get_option(option))
                if value not in (None, ""):
                    return str(value)
        return None

    def _container(self) -> str:
        """The container's name as its engine knows it (``remote_addr``: ``ansible_host``, else the inventory name)."""
        return str(self.first_set("remote_addr") or getattr(self._play_context, "remote_addr", None) or "localhost")

    def host_name(self) -> str:
        return self._container()

    def _remote_user(self) -> Optional[str]:
        return self.first_set(self.user_option) if self.user_option else None

    def _login_spec(self) -> Dict[str, Any]:
        spec = self._engine_spec()
        spec["connect_timeout"] = self._timeout()
        return self._with_python(spec)

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        return plugin_utils.load("_oneshot").transport_argv(spec, ["/bin/sh", "-c", cmd])
