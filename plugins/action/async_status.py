# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.async_status: the status of an async job (see the module's docs).

Ansible's own ``async_status`` action, unchanged: ns.mitogen's async jobs write
vanilla's job files where vanilla's do, so the same action and module read them,
under any connection (the built-in name works as well).
"""

from __future__ import annotations

from ansible.plugins.action.async_status import ActionModule as _BuiltinAsyncStatus

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py


class ActionModule(_BuiltinAsyncStatus):
    """``ansible.builtin.async_status`` under the collection's name."""
