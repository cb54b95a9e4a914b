# A new-style module importing a module_util from the playbook's own module_utils/.
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nsm_styles_helper import greeting


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    module.exit_json(changed=False, greeting=greeting(module.params["name"]))


if __name__ == "__main__":
    main()
