# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.machinectl: tasks in a systemd-nspawn machine, entered by setns, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: machinectl
short_description: Run tasks in a systemd machine (machinectl), in a persistent interpreter
description:
  - Runs the machine's Python once per run and every command, file copy and module
    there as an RPC. As the original Mitogen's C(machinectl) method, this is C(setns)
    with O(ns.mitogen.setns#connection:mitogen_kind=machinectl) - C(machinectl show -p
    Leader NAME) finds the machine's init process and its namespaces are joined
    directly (C(machinectl shell) gives only a pty, which would mangle the stream).
  - Needs root where it runs (so polkit never asks); a machine that is not running, a
    missing C(machinectl), or a machine without Python fails saying which.
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
      - name: ansible_machinectl_host
  remote_user:
    description: The user in the machine the tasks run as (default - root).
    type: string
    vars:
      - name: ansible_user
      - name: ansible_machinectl_user
  mitogen_machinectl_path:
    description: The C(machinectl) program, a name looked up in C(PATH) or a path.
    type: string
    default: machinectl
    vars:
      - name: mitogen_machinectl_path
"""

EXAMPLES = r"""
# inventory: a systemd-nspawn machine named "build" on the controller
# build ansible_connection=ns.mitogen.machinectl

- name: Run in the machine
  hosts: build
  tasks:
    - name: Its init
      ansible.builtin.command: cat /proc/1/comm
      changed_when: false
"""

from typing import Any, Dict

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._engine_connection import EngineConnectionBase


class Connection(EngineConnectionBase):
    """ns.mitogen in a systemd machine, by setns(2) (the original's machinectl)."""

    method = "machinectl"

    def _engine_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"method": "setns", "kind": "machinectl", "container": self._container()}
        spec["tool_path"] = self.first_set("mitogen_machinectl_path") or "machinectl"
        user = self._remote_user()
        if user:
            spec["username"] = user
        return spec
