# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.lxc: tasks in an LXC container, through lxc-attach, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxc
short_description: Run tasks in an LXC container (lxc-attach), in a persistent interpreter
description:
  - Like P(community.general.lxc#connection), but the container's Python is started once
    per run with C(lxc-attach -n NAME --clear-env --) and every command, file copy and
    module runs there as an RPC; C(lxc-attach) is always used, never the LXC Python
    bindings (as the original Mitogen's C(lxc) method).
  - An unknown or stopped container, a missing C(lxc-attach) or a container without
    Python fails saying which.
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
      - name: ansible_lxc_host
  mitogen_lxc_attach_path:
    description: The C(lxc-attach) program, a name looked up in C(PATH) or a path.
    type: string
    default: lxc-attach
    vars:
      - name: mitogen_lxc_attach_path
  mitogen_lxc_path:
    description: Accepted from the original Mitogen, where it named C(lxc) for LXD; here the
      path of C(lxc-attach) when O(mitogen_lxc_attach_path) is unset.
    type: string
    vars:
      - name: mitogen_lxc_path
"""

EXAMPLES = r"""
# inventory: web1 is an LXC container on the controller
# web1 ansible_connection=ns.mitogen.lxc

- name: Run in the container
  hosts: web1
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
    """ns.mitogen in an LXC container, through lxc-attach."""

    method = "lxc"
    user_option = ""  # lxc-attach runs as root, as community.general.lxc does

    def _engine_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"method": "lxc", "container": self._container()}
        path = self.first_set("mitogen_lxc_attach_path", "mitogen_lxc_path")
        if path:
            spec["engine_path"] = path
        return spec
