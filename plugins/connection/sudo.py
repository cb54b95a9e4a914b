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
  - That interpreter is the host's login interpreter - a task's own C(become) stacks one
    more interpreter on it (none when it would become the same user), and
    O(max_interpreters) counts the interpreters stacked on it.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.2.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  become_user:
    description:
      - The user the interpreter runs as - the host's remote user (C(ansible_user), the
        C(remote_user) keyword). Not C(ansible_become_user) - that names the user a
        task's own C(become) then becomes.
    type: string
    default: root
    vars:
      - name: ansible_user
    keyword:
      - name: remote_user
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
      - The flags the connection sets itself (C(-H), C(-S), C(-n)) are dropped, as for a
        task's own C(become_method=sudo).
    type: string
    default: "-H -S -n"
    env:
      - name: NS_MITOGEN_SUDO_FLAGS
    vars:
      - name: ansible_sudo_hop_flags
notes:
  - The host's address is not used - the target is always the controller.
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

plugin_utils.install()  # before importing our modules: see plugin_utils/__init__.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._hop import HopConnectionBase


class Connection(HopConnectionBase):
    """ns.mitogen as another user of the controller, through sudo."""

    method = "sudo"
