# A new-style module that reads the `ansible` package itself: AnsiballZ serves it
# as a stub carrying the controller's __version__ and __author__.
import ansible
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={})
    module.exit_json(
        changed=False,
        version=ansible.__version__,
        author=ansible.__author__,
        path_is_list=isinstance(ansible.__path__, list),
    )


if __name__ == "__main__":
    main()
