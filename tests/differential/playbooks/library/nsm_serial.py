# A new-style module for serialization.yml: echoes its arguments back, emits a
# warning and a deprecation on request, and returns text that looks like a template.
# (No `from __future__ import annotations`: it runs on Python 3.6 targets too, under ansible-core 2.16.)

DOCUMENTATION = r"""
module: nsm_serial
short_description: Test module for ns.mitogen's differential suite (serialization)
description: Echoes its arguments; warns and deprecates on request.
options:
  text: {type: str}
  secret: {type: str, no_log: true}
  number: {type: int}
  nested: {type: dict}
  warn: {type: bool, default: false}
author: ns.mitogen contributors
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - after DOCUMENTATION, as Ansible modules are


def main():
    module = AnsibleModule(
        argument_spec=dict(
            text=dict(type="str"),
            secret=dict(type="str", no_log=True),
            number=dict(type="int"),
            nested=dict(type="dict"),
            warn=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["warn"]:
        module.warn("nsm_serial: a warning from the module")
        module.deprecate("nsm_serial: a deprecated option", version="9.0.0", collection_name="ns.mitogen")
    secret = module.params["secret"] or ""
    module.exit_json(
        changed=False,
        text=module.params["text"],
        number=module.params["number"],
        nested=module.params["nested"],
        secret_length=len(secret),
        secret_reversed=secret[::-1],
        looks_like_template="{{ 6 * 7 }} and {% if true %}x{% endif %}",
        unicode="h\u00e9llo \u2603 \U0001f600",
    )


if __name__ == "__main__":
    main()
