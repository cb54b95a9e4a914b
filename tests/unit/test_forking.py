"""Which module runs go to a fork of the zygote (plugin_utils/_forking.py): names, the list, the variable."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.ns.mitogen.plugins.plugin_utils import _forking


class _Connection:
    """Answers get_option as a connection with these options set (KeyError for undeclared ones)."""

    def __init__(self, **options: Any) -> None:
        self.options: Dict[str, Any] = {"mitogen_task_isolation": None, "fork_modules": [], **options}

    def get_option(self, name: str) -> Any:
        return self.options[name]


def test_canonical_names():
    assert _forking.canonical_name("ansible.modules.dnf") == "ansible.builtin.dnf"
    assert _forking.canonical_name("ansible_collections.freeipa.ansible_freeipa.plugins.modules.ipauser") == (
        "freeipa.ansible_freeipa.ipauser"
    )
    assert _forking.canonical_name("ansible.legacy.my_library_module") == "my_library_module"


def test_the_built_in_list_has_a_reason_for_each_entry_and_matches_collections_by_pattern():
    assert all(reason for reason in _forking.ALWAYS_FORK.values())
    for name in ("ansible.builtin.dnf", "ansible.builtin.dnf5", "ansible.builtin.yum", "freeipa.ansible_freeipa.ipauser"):
        assert _forking.listed(name), name
    assert _forking.listed("ansible.builtin.command") is None
    assert _forking.listed("community.general.zypper", ["community.general.*"])


def test_the_variable_and_the_option_decide():
    warnings: List[str] = []
    assert _forking.fork_reason(_Connection(), "ansible.modules.command", warnings.append) is None
    assert _forking.fork_reason(_Connection(mitogen_task_isolation="fork"), "ansible.modules.command", warnings.append)
    assert _forking.fork_reason(_Connection(), "ansible.modules.dnf", warnings.append)
    assert _forking.fork_reason(_Connection(fork_modules=["mine"]), "ansible.legacy.mine", warnings.append)
    assert _forking.fork_reason(_Connection(mitogen_task_isolation="default"), "ansible.modules.command", warnings.append) is None
    assert warnings == []


def test_an_unknown_value_is_reported_once_and_taken_as_default():
    warnings: List[str] = []
    for _attempt in range(3):
        assert _forking.fork_reason(_Connection(mitogen_task_isolation="forked"), "ansible.modules.ping", warnings.append) is None
    assert len(warnings) == 1 and "'forked'" in warnings[0] and "fork or default" in warnings[0]


def test_a_connection_without_the_options_never_forks_by_them():
    class Bare:
        def get_option(self, name: str) -> Any:
            raise KeyError(name)

    assert _forking.fork_reason(Bare(), "ansible.modules.command", lambda _msg: None) is None
