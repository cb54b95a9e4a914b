# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.fetch: ansible's fetch, streamed from the task's interpreter (see ``_fetch``).

Ansible's own ``fetch`` action: the same arguments, results and keys (``dest``,
``checksum``, ``md5sum``, ``remote_checksum``, ``changed``, ``fail_on_missing``,
``validate_checksum``, ``flat``). On an ns.mitogen connection the file streams,
with bounded memory at every hop, from the interpreter the task's commands run in,
the become one too (where ansible's own would read it whole with ``slurp``);
with a line of progress every few seconds at ``-v`` for a large one. On any other
connection it is ansible's own action.
"""

from __future__ import annotations

from ansible.plugins.action.fetch import ActionModule as _BuiltinFetch

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/__init__.py


class ActionModule(_BuiltinFetch):
    """``ansible.builtin.fetch`` under the collection's name, streaming on ns.mitogen connections."""
