# Resolves a name with socket.getaddrinfo in the module's own process (the persistent
# interpreter under ns.mitogen): which servers its C resolver uses shows in the answer.
import socket

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    try:
        infos = socket.getaddrinfo(module.params["name"], 80, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        module.exit_json(changed=False, addresses=[], error=str(exc))
    module.exit_json(changed=False, addresses=sorted({info[4][0] for info in infos}), error=None)


if __name__ == "__main__":
    main()
