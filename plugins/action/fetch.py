# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.fetch: ansible's fetch in one round trip on ns.mitogen connections (see ``_fetch_action``).

Ansible's own ``fetch`` action: the same arguments, results and keys (``dest``,
``checksum``, ``md5sum``, ``remote_checksum``, ``changed``, ``fail_on_missing``,
``validate_checksum``, ``flat``). On an ns.mitogen connection one call stats the
file in the interpreter the task's commands run in (the become one too, where
ansible's own would read it whole with ``slurp``) and streams it, with bounded
memory at every hop, unless the controller's copy is already the same; with a
line of progress every few seconds at ``-v`` for a large one. ``fetch``,
``ansible.builtin.fetch`` and ``ansible.legacy.fetch`` run this action too on a
host whose connection is ns.mitogen's (under any strategy; not on a host with
``mitogen_disable: true``). On any other connection it is ansible's own action.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.plugins.action import ActionBase
from ansible.plugins.action.fetch import ActionModule as _BuiltinFetch

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _fetch_action
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase


class ActionModule(_BuiltinFetch):
    """``ansible.builtin.fetch`` under the collection's name, in one round trip on ns.mitogen connections."""

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars if task_vars is not None else {}
        connection = self._connection
        if not isinstance(connection, MitogenConnectionBase) or getattr(connection._shell, "_IS_WINDOWS", False):
            return super().run(tmp, task_vars)  # type: ignore[no-any-return]
        result = ActionBase.run(self, tmp, task_vars)
        return _fetch_action.run(self, task_vars, result, lambda: super(ActionModule, self).run(None, task_vars))
