# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the hop connections (ns.mitogen.sudo, su, doas) share: whom they start, and where."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
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
notes:
  - The host's address is not used - the target is always the controller.
  - The interpreter started is the host's login interpreter - a task's own C(become) stacks one
    more interpreter on it (none when it would become the same user), and
    O(max_interpreters) counts the interpreters stacked on it.
"""
