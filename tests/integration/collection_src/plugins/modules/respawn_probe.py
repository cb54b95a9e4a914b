# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module of the test collection that respawns itself on another Python, as dnf and apt do."""

from __future__ import annotations

DOCUMENTATION = r"""
module: respawn_probe
short_description: Respawns itself under another interpreter and says which one ran it
description:
  - Calls C(respawn_module) toward O(interpreter) unless it already respawned, then returns
    the interpreter that ran it.
author: ns.mitogen contributors (@ns-mitogen)
options:
  interpreter:
    description: The Python to respawn on.
    type: str
    required: true
"""

import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.respawn import has_respawned, respawn_module


def main() -> None:
    module = AnsibleModule(argument_spec={"interpreter": {"type": "str", "required": True}})
    if not has_respawned():
        respawn_module(module.params["interpreter"])
    module.exit_json(changed=False, executable=sys.executable, respawned=has_respawned(), python=list(sys.version_info[:2]))


if __name__ == "__main__":
    main()
