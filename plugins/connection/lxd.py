# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.lxd: tasks in an LXD instance, through lxc exec, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd
short_description: Run tasks in an LXD instance (lxc exec), in a persistent interpreter
description:
  - Like P(community.general.lxd#connection), but the instance's Python is started once per run with
    C(lxc [--project P] exec REMOTE:NAME --mode=non-interactive --) and every command,
    file copy and module runs there as an RPC.
  - A user other than root is reached with O(lxd_become_method) (C(su USER -c ...)),
    as the counterpart does.
  - An unknown or stopped instance, an unknown remote or project, a missing C(lxc) or
    an instance without Python fails saying which.
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
      - name: ansible_lxd_host
  remote_user:
    description: The user in the instance the tasks run as.
    type: string
    default: root
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  lxd_become_method:
    description: The command that becomes O(remote_user) in the instance when it is not root.
    type: string
    default: /bin/su
    vars:
      - name: lxd_become_method
  remote:
    description: The remote (C(lxc remote list)) that holds the instance.
    type: string
    default: local
    vars:
      - name: ansible_lxd_remote
  project:
    description: The project of the instance.
    type: string
    vars:
      - name: ansible_lxd_project
  lxd_executable:
    description: The C(lxc) program, a name looked up in C(PATH) or a path.
    type: string
    default: lxc
    vars:
      - name: ansible_lxd_executable
      - name: mitogen_lxc_path
"""

EXAMPLES = r"""
# inventory: web1 is an instance of remote "cluster", project "web"
# web1 ansible_connection=ns.mitogen.lxd ansible_lxd_remote=cluster ansible_lxd_project=web

- name: Run in the instance
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
    """ns.mitogen in an lxd instance, through lxc exec."""

    method = "lxd"

    def _engine_spec(self) -> Dict[str, Any]:
        return self._instance_spec()
