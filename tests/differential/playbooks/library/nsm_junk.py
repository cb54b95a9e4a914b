# A new-style module that prints junk instead of a JSON result and exits 0.
import sys

from ansible.module_utils.basic import AnsibleModule


def main():
    AnsibleModule(argument_spec={})
    print("this is not JSON")
    sys.stdout.write("neither {is this\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
