# A role's module importing the role's own module_util.
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nsm_role_helper import role_greeting


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    module.exit_json(changed=False, greeting=role_greeting(module.params["name"]))


if __name__ == "__main__":
    main()
