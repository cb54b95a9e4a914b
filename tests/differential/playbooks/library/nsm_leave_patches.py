# Monkey-patches the standard library and leaves it so: subprocess.Popen replaced,
# a method of the real Popen class replaced, os.environ.get and os.path.exists replaced.
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule


class FakePopen:
    pass


def main():
    module = AnsibleModule(argument_spec={})
    subprocess.Popen.communicate = lambda self, *a, **k: (b"patched", b"")  # type: ignore[method-assign,assignment]
    subprocess.Popen = FakePopen  # type: ignore[misc,assignment]
    os.environ.get = lambda key, default=None: "patched"  # type: ignore[method-assign]
    os.path.exists = lambda path: False
    module.exit_json(changed=False, patched=True)


if __name__ == "__main__":
    main()
