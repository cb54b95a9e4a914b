# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the mitogen_get_stack action (plugins/action/mitogen_get_stack.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mitogen_get_stack
short_description: Show the connection stack ns.mitogen uses for a host
description:
  - Returns, as RV(result), the list of hops (login, then become) whose
    persistent interpreter runs this task on the host, as the original Mitogen's
    C(mitogen_get_stack) does. Passwords, passphrases and inline keys are shown as
    C(********).
  - Runs nothing on the host and starts no connection.
  - On a host whose connection is not an ns.mitogen one, the task is skipped.
version_added: "0.1.0"
author: ns.mitogen contributors (@ns-mitogen)
options: {}
attributes:
  check_mode:
    support: full
    description: Reads nothing from the host; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  platform:
    support: full
    platforms: posix
    description: Any host an ns.mitogen connection reaches.
"""

EXAMPLES = r"""
- name: Which interpreter would run a become task here?
  ns.mitogen.mitogen_get_stack:
  become: true
  register: stack

- name: Show it
  ansible.builtin.debug:
    var: stack.result
"""

RETURN = r"""
result:
  description: One dict per hop, from the controller outwards (C(method) is C(ssh), C(local) or C(sudo)).
  returned: when the host uses an ns.mitogen connection
  type: list
  elements: dict
  sample:
    - method: ssh
      hostname: web1
      username: deploy
      password: "********"
    - method: sudo
      username: root
"""
