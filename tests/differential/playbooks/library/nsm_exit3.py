# A new-style module that prints part of its output and calls sys.exit(3) mid-way.
import sys

from ansible.module_utils.basic import AnsibleModule


def main():
    AnsibleModule(argument_spec={})  # reads its arguments as any module does, then never answers
    print("halfway there")
    sys.stderr.write("giving up\n")
    sys.exit(3)


if __name__ == "__main__":
    main()
