# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module of the test collection that imports its own collection's module_utils."""

from __future__ import annotations

DOCUMENTATION = r"""
module: greet
short_description: Greets, through module_utils of its own collection
description:
  - Imports a module_util of its collection and one in an implicit namespace package.
author: ns.mitogen contributors (@ns-mitogen)
options:
  name:
    description: Who to greet.
    type: str
    required: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nsm_test.utils.plugins.module_utils.greeting import greet
from ansible_collections.nsm_test.utils.plugins.module_utils.text import words


def main() -> None:
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    module.exit_json(
        changed=False,
        greeting=greet(module.params["name"]),
        words=words.__name__,
    )


if __name__ == "__main__":
    main()
