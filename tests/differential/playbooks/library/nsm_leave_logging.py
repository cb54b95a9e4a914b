# Leaves logging configured: a root handler and level (basicConfig), a handler and
# level on a named logger, and logging.disable.
import logging

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={})
    logging.basicConfig(level=logging.DEBUG)
    named = logging.getLogger("nsm.hygiene")
    named.addHandler(logging.StreamHandler())
    named.setLevel(logging.ERROR)
    named.propagate = False
    module.exit_json(changed=False, configured=True)


if __name__ == "__main__":
    main()
