# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.mitogen_get_stack: the connection stack a task on this host would use (see the module's docs)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.plugins.action import ActionBase

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import redacted
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase


class ActionModule(ActionBase):
    """Reports the hop specs of this task's interpreter, secrets hidden; runs nothing on the host."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        connection = self._connection
        if not isinstance(connection, MitogenConnectionBase):
            result.update(skipped=True, msg="the connection %r is not an ns.mitogen one" % connection.transport)
            return result
        result.update(changed=False, result=redacted(connection._stack(sudoable=True)))
        return result
