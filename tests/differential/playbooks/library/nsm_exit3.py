# A new-style module that prints part of its output and calls sys.exit(3) mid-way.
import sys

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={})
    print("halfway there")
    sys.stderr.write("giving up\n")
    sys.exit(3)
    module.exit_json(changed=True)  # never reached  # pylint: disable=unreachable


if __name__ == "__main__":
    main()
