# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Any installed become plugin as a persistent interpreter: the worker's side (private).

Owns: the hop spec a worker asks for (``plugin_spec``: the plugin's load name and its
options). The spec names the plugin and carries its options (the password among them:
a secret option, ``redacted`` in every log, and part of the stack's key as sudo's
password is). The multiplexer's side, which keeps each plugin instance and answers the
hop that starts the interpreter, is ``_become_service``; this module stays small, as
every worker under a built-in strategy imports it.
"""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.ns.mitogen.plugins.plugin_utils._options import native

METHOD = "become"
SERVICE = "ns.mitogen.become"


def plugin_spec(plugin: Any, timeout: int, shell: str) -> Dict[str, Any]:
    """The worker's hop spec for the become ``plugin`` (completed by ``BecomeService.prepare``)."""
    return {
        "method": METHOD,
        "plugin": str(getattr(plugin, "ansible_name", None) or plugin.name),
        "options": native(plugin.get_options()),
        "username": native(plugin.get_option("become_user")),
        "shell": shell,
        "connect_timeout": timeout,
    }
