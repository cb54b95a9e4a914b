# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Become on ns.mitogen connections: one interpreter per become user (private).

Owns: which become plugins run natively (sudo here; su and doas from
``_become_native``), which cannot run at all (runas,
enable: ``check_supported`` says why) -- every other one runs through
``_become_any``, driven by its own logic -- the sudo hop spec a task's become plugin
asks for, the proxy that hands the become plugin to Ansible without letting it wrap
commands, and stripping the success marker a become wrapper echoes (the one-shot
path, where the task's own become plugin wraps the command).

Ansible normally wraps each command in ``sudo ... sh -c '...'``. Here the command
runs unwrapped in an interpreter that sudo started once (one per become user,
reused across tasks), so the become plugin is handed to Ansible through a proxy
whose ``build_become_command`` leaves commands as they are. To ansible's own fetch
action the proxy reads as false (``_fetch`` says why and how).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional

from ansible.errors import AnsibleError
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins.plugin_utils import _become_native, _fetch, _sudo_flags
from ansible_collections.ns.mitogen.plugins.plugin_utils._options import native

# Plugins that cannot start a Python interpreter on a POSIX target, and why.
UNSUPPORTED_BECOME = {
    "runas": "it runs only on Windows targets (winrm, psrp), where no ns.mitogen interpreter runs",
    "enable": "it enters privileged mode on network devices (network_cli), which run no Python",
}


class BecomeProxy:
    """The task's become plugin, except that it never wraps a command.

    It reads as false to ansible's own fetch action alone (see ``_fetch``), so
    that this streams the file instead of slurping it whole through a module.
    Modules always travel to the become interpreter as pipelining sends them
    (``pipelining`` is True whatever the plugin says: su's False is about its
    one-shot command line, which never runs here), so no temp file is written.
    """

    pipelining = True

    def __init__(self, plugin: Any) -> None:
        object.__setattr__(self, "_plugin", plugin)

    def __bool__(self) -> bool:
        return not _fetch.called_by_fetch_action(sys._getframe(1))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plugin, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._plugin, name, value)

    def build_become_command(self, cmd: str, shell: Any) -> str:
        return cmd


def short_name(plugin: Any) -> str:
    """The plugin's name, without ``ansible.builtin.`` (``community.general.sudosu`` stays whole)."""
    name = str(getattr(plugin, "ansible_name", None) or plugin.name)
    return name[len("ansible.builtin.") :] if name.startswith("ansible.builtin.") else name


def native_spec(plugin: Any, timeout: int) -> Optional[Dict[str, Any]]:
    """The hop spec of the core's own transport for ``plugin`` (``NATIVE_SPECS``); None: ``_become_any``."""
    build = NATIVE_SPECS.get(short_name(plugin))
    return build(plugin, timeout) if build is not None else None


def check_supported(plugin: Any) -> None:
    """Raise ``AnsibleError`` for a become plugin that cannot start an interpreter (``UNSUPPORTED_BECOME``).

    Every other installed plugin works: natively (``NATIVE_SPECS``), else driven by
    its own logic (``_become_any``).
    """
    if plugin is None:
        return
    name = short_name(plugin)
    why = UNSUPPORTED_BECOME.get(name.rsplit(".", 1)[-1] if name.startswith("ansible.") else name)
    if why:
        raise AnsibleError(
            "ns.mitogen: become method %r cannot run a persistent interpreter: %s; "
            "use a connection plugin that supports it for this host or task" % (plugin.name, why)
        )


def sudo_spec(plugin: Any, timeout: int) -> Dict[str, Any]:
    """The sudo hop spec the become ``plugin``'s options ask for (no interpreter named yet).

    ``become_flags`` keep their meaning or are refused, saying why (``_sudo_flags``).
    """
    spec: Dict[str, Any] = {
        "method": "sudo",
        "username": native(plugin.get_option("become_user") or "root"),
        "sudo_path": native(plugin.get_option("become_exe") or "sudo"),
        "connect_timeout": timeout,
    }
    spec.update(_sudo_flags.sudo_options(str(plugin.get_option("become_flags") or ""), Display().warning))
    if plugin.has_option("sudo_chdir") and plugin.get_option("sudo_chdir"):
        raise AnsibleError(
            "ns.mitogen: sudo_chdir is not supported: sudo starts one interpreter for many tasks, and a module's "
            "working directory is the task's (chdir, or the play's) instead"
        )
    password = plugin.get_option("become_pass")
    if password:
        spec["password"] = str(password)
    return spec


# Become methods with a transport of their own in the core, by name: their hop spec. Every
# other installed become plugin runs through ``_become_any`` (its own command line and checks).
# Keyed by ``short_name``: ansible-core routes ``doas`` to ``community.general.doas``.
NATIVE_SPECS: Dict[str, Callable[[Any, int], Dict[str, Any]]] = {
    "sudo": sudo_spec,
    "su": _become_native.su_spec,
    "doas": _become_native.doas_spec,
    "community.general.doas": _become_native.doas_spec,
}


def strip_success(stdout: bytes, marker: bytes) -> bytes:
    """Output without the line a become wrapper echoes first (as the ssh plugin strips it)."""
    if not marker:
        return stdout
    lines = stdout.splitlines(True)
    for i, line in enumerate(lines):
        if marker in line:
            return b"".join(lines[:i] + lines[i + 1 :])
    return stdout
