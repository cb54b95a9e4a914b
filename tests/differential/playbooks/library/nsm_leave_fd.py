# Leaves file descriptors open on /etc/hostname: a Python file object kept in a
# global, and a raw descriptor from os.open.
import os
from typing import Any, List

from ansible.module_utils.basic import AnsibleModule

KEPT: List[Any] = []


def main():
    module = AnsibleModule(argument_spec={})
    KEPT.append(open("/etc/hostname"))
    KEPT.append(os.open("/etc/hostname", os.O_RDONLY))
    module.exit_json(changed=False, opened=2)


if __name__ == "__main__":
    main()
