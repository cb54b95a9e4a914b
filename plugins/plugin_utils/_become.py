# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Become on ns.mitogen connections: one interpreter per become user (private).

Owns: which become plugins are supported, the sudo hop spec a task's become plugin
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
from typing import Any, Dict

from ansible.errors import AnsibleError

from ansible_collections.ns.mitogen.plugins.plugin_utils import _fetch
from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words

SUPPORTED_BECOME = ("sudo", "su", "doas")
# sudo flags our sudo transport sets itself (or must not get): dropped from become_flags.
_SUDO_OWN_FLAGS = {"-H", "-S", "-n", "--non-interactive", "--stdin", "--set-home"}


class BecomeProxy:
    """The task's become plugin, except that it never wraps a command.

    It reads as false to ansible's own fetch action alone (see ``_fetch``), so
    that this streams the file instead of slurping it whole through a module.
    """

    # Modules reach the become user through the interpreter the tool started, never
    # through the tool per command: a become plugin that cannot pipeline (su, doas)
    # must not make Ansible fall back to temp files.
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


def check_supported(plugin: Any) -> None:
    """Raise ``AnsibleError`` for a become plugin ns.mitogen cannot run (sudo, su and doas only, for now)."""
    if plugin is not None and method_of(plugin) not in SUPPORTED_BECOME:
        raise AnsibleError(
            "ns.mitogen: become method %r is not supported yet (supported: %s); "
            "use ansible.builtin.ssh for this host or task" % (plugin.name, ", ".join(SUPPORTED_BECOME))
        )


def method_of(plugin: Any) -> str:
    """The become method's short name: ``sudo`` for ``ansible.builtin.sudo``, ``doas`` for ``community.general.doas``."""
    return str(plugin.name).rsplit(".", 1)[-1]


def native(value: Any) -> Any:
    """A plain str/int/bool/list copy of an option value (no tags, no vault objects)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [native(v) for v in value]
    return str(value)


def sudo_spec(plugin: Any, timeout: int) -> Dict[str, Any]:
    """The sudo hop spec the become ``plugin``'s options ask for (no interpreter named yet)."""
    flags = [f for f in split_words(str(plugin.get_option("become_flags") or "")) if f not in _SUDO_OWN_FLAGS]
    spec: Dict[str, Any] = {
        "method": "sudo",
        "username": native(plugin.get_option("become_user") or "root"),
        "sudo_path": native(plugin.get_option("become_exe") or "sudo"),
        "sudo_args": flags,
        "connect_timeout": timeout,
    }
    password = plugin.get_option("become_pass")
    if password:
        spec["password"] = str(password)
    return spec


def strip_success(stdout: bytes, marker: bytes) -> bytes:
    """Output without the line a become wrapper echoes first (as the ssh plugin strips it)."""
    if not marker:
        return stdout
    lines = stdout.splitlines(True)
    for i, line in enumerate(lines):
        if marker in line:
            return b"".join(lines[:i] + lines[i + 1 :])
    return stdout
