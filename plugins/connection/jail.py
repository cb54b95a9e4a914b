# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.jail: tasks in a FreeBSD jail, through jexec, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: jail
short_description: Run tasks in a FreeBSD jail (jexec), in a persistent interpreter
description:
  - Like P(community.general.jail#connection), but the jail's Python is started once per
    run with C(jexec [-U USER] JAIL) and every command, file copy and module runs there
    as an RPC.
  - An unknown jail, a missing C(jexec) or a jail without Python fails saying which.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.3.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  remote_addr:
    description: The container's name as its engine knows it.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_jail_host
  remote_user:
    description: The user in the jail the tasks run as (C(jexec -U), with C(HOME) set for it).
    type: string
    vars:
      - name: ansible_user
      - name: ansible_jail_user
  mitogen_jexec_path:
    description: The C(jexec) program, a name looked up in C(PATH) or a path.
    type: string
    default: jexec
    vars:
      - name: mitogen_jexec_path
"""

EXAMPLES = r"""
# inventory: www is a jail on the FreeBSD controller
# www ansible_connection=ns.mitogen.jail ansible_python_interpreter=/usr/local/bin/python3.11

- name: Run in the jail
  hosts: www
  tasks:
    - name: Its hostname
      ansible.builtin.command: hostname
      changed_when: false
"""

from typing import Any, Dict

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._engine_connection import EngineConnectionBase


class Connection(EngineConnectionBase):
    """ns.mitogen in a FreeBSD jail, through jexec."""

    method = "jail"

    def _engine_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"method": "jail", "container": self._container()}
        user = self._remote_user()
        if user:
            spec["username"] = user
        path = self.first_set("mitogen_jexec_path")
        if path:
            spec["engine_path"] = path
        return spec
