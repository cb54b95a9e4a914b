# A new-style module that imports a module_util shipped next to the playbook.
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nsm_diff_helper import annotations, greet


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    module.exit_json(changed=False, greeting=greet(module.params["name"]), annotations=annotations())


if __name__ == "__main__":
    main()
