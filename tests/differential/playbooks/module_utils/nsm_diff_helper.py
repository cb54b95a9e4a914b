# A module_util that lives next to the playbook (not in ansible-core): modules
# import it as ansible.module_utils.nsm_diff_helper.


def greet(name):
    return "hello %s from a playbook-adjacent module_util" % name


def annotated(name: str, count: int = 1) -> str:
    return name * count


def annotations():
    """How this module's annotations evaluate: objects, unless the module was compiled
    with a ``from __future__ import annotations`` it does not have (then strings)."""
    return {key: repr(value) for key, value in annotated.__annotations__.items()}
