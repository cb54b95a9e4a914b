# Starts a daemon thread that never ends, and exits.
import threading
import time

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={})
    threading.Thread(target=lambda: time.sleep(3600), name="nsm-left-thread", daemon=True).start()
    module.exit_json(changed=False, started=True)


if __name__ == "__main__":
    main()
