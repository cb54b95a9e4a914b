# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.sudo: tasks as another account of the controller, through sudo, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: sudo
short_description: Run tasks as another user of the controller, reached with sudo, in a persistent interpreter
description:
  - Starts, from the controller, one Python interpreter as O(become_user) with C(sudo)
    (once per run) and runs every command, file copy and module there as an RPC - the
    original Mitogen's C(mitogen_sudo) connection (that name is routed here).
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.2.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
  - ns.mitogen.hop
options:
  become_pass:
    description:
      - The password C(sudo) asks for, typed when it asks (never on a command line).
      - Unset - C(sudo) must not ask (the connection fails with what it said if it does).
    type: string
    vars:
      - name: ansible_password
  become_exe:
    description: The C(sudo) program to run (a name looked up in C(PATH), or a path).
    type: string
    default: sudo
    env:
      - name: NS_MITOGEN_SUDO_EXE
    vars:
      - name: ansible_sudo_hop_exe
  become_flags:
    description:
      - More options for C(sudo), as one string split like a shell's words.
      - Each flag keeps the meaning it has for a task's own C(become_method=sudo) (C(-H),
        C(-E), C(-i), C(-s) as with vanilla; C(-S), C(-n) kept in effect) or is refused
        saying why (C(-u), C(-U), C(-b), C(-T)); see the become notes of this connection.
    type: string
    default: "-H -S -n"
    env:
      - name: NS_MITOGEN_SUDO_FLAGS
    vars:
      - name: ansible_sudo_hop_flags
"""

EXAMPLES = r"""
# inventory: a host that is the controller's own postgres account
# db-admin ansible_connection=ns.mitogen.sudo ansible_user=postgres

- name: Run as postgres on the controller
  hosts: db-admin
  tasks:
    - name: Who am I
      ansible.builtin.command: id -un
      changed_when: false
"""

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _plugin_defs
from ansible_collections.ns.mitogen.plugins.plugin_utils._hop import HopConnectionBase


class Connection(HopConnectionBase):
    """ns.mitogen as another user of the controller, through sudo."""

    method = "sudo"


# Ansible parses DOCUMENTATION into option definitions after this module runs: from
# the second process on, they come from our cache instead (see _plugin_defs).
_plugin_defs.preload("connection", __file__, DOCUMENTATION)
