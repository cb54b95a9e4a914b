# A new-style module that raises an uncaught exception after reading its arguments.
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"why": {"type": "str"}})
    raise RuntimeError("nsm_crash: %s" % module.params["why"])


if __name__ == "__main__":
    main()
