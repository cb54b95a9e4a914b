# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.su: tasks as another account of the controller, through su, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: su
short_description: Run tasks as another user of the controller, reached with su, in a persistent interpreter
description:
  - Starts, from the controller, one Python interpreter as O(become_user) with C(su)
    (once per run) and runs every command, file copy and module there as an RPC - the
    original Mitogen's C(mitogen_su) connection (that name is routed here).
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.2.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
  - ns.mitogen.hop
options:
  become_pass:
    description:
      - The password C(su) asks for, typed when it asks (never on a command line).
      - Unset - C(su) must not ask (the connection fails with what it said if it does).
    type: string
    vars:
      - name: ansible_password
  become_exe:
    description: The C(su) program to run (a name looked up in C(PATH), or a path).
    type: string
    default: su
    env:
      - name: NS_MITOGEN_SU_EXE
    vars:
      - name: ansible_su_hop_exe
  become_flags:
    description:
      - More options for C(su), as one string split like a shell's words.
    type: string
    default: ""
    env:
      - name: NS_MITOGEN_SU_FLAGS
    vars:
      - name: ansible_su_hop_flags
"""

EXAMPLES = r"""
# inventory: a host that is the controller's own postgres account
# db-admin ansible_connection=ns.mitogen.su ansible_user=postgres

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
    """ns.mitogen as another user of the controller, through su."""

    method = "su"


# Ansible parses DOCUMENTATION into option definitions after this module runs: from
# the second process on, they come from our cache instead (see _plugin_defs).
_plugin_defs.preload("connection", __file__, DOCUMENTATION)
