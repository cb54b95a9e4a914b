# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.local: tasks on the controller in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: local
short_description: Run tasks on the controller in a persistent Python interpreter
description:
  - Like P(ansible.builtin.local#connection), but every command, file copy and module
    runs as an RPC to an interpreter started once per run (and once per become user).
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.1.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
notes:
  - The remote user is ignored; tasks run as the user running ansible-playbook.
"""

import getpass
from typing import Any, Dict, List, Optional

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _plugin_defs
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase


class Connection(MitogenConnectionBase):
    """ns.mitogen on the controller."""

    method = "local"

    @property
    def transport(self) -> str:
        # ActionBase gives 'local' connections the playbook's directory as cwd.
        return "local"

    def _remote_user(self) -> Optional[str]:
        return getpass.getuser()

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        return ["/bin/sh", "-c", cmd]

    def _login_spec(self) -> Dict[str, Any]:
        return self._with_python({"method": "local", "connect_timeout": self._timeout()})


# Ansible parses DOCUMENTATION into option definitions after this module runs: from
# the second process on, they come from our cache instead (see _plugin_defs).
_plugin_defs.preload("connection", __file__, DOCUMENTATION)
