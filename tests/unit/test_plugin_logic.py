"""Pure logic of the Ansible-side plugins: ssh argument filtering, redirection, stack keys."""

from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible_collections.ns.mitogen.plugins.connection.ssh import filter_ssh_args  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _strategy  # noqa: E402


def test_connection_sharing_options_are_dropped():
    args = ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-oControlPath=/x", "-o", "User=a", "-v"]
    assert filter_ssh_args(args) == ["-o", "User=a", "-v"]


@pytest.mark.parametrize(
    "connection,expected",
    [
        ("ssh", "ns.mitogen.ssh"),
        ("ansible.builtin.ssh", "ns.mitogen.ssh"),
        ("local", "ns.mitogen.local"),
        ("winrm", None),
        (None, None),
    ],
)
def test_redirect(connection, expected):
    assert _strategy.redirect(connection) == expected


def test_opt_out_and_delegated_vars():
    tv = {"ansible_connection": "ssh", "mitogen_disable": "yes"}
    _strategy._redirect_vars(tv, None)
    assert tv["ansible_connection"] == "ssh"
    tv = {}
    _strategy._redirect_vars(tv, "smart")
    assert tv["ansible_connection"] == "ns.mitogen.ssh"


def test_stack_key_is_canonical():
    assert _mux.stack_key([{"b": 1, "a": 2}]) == _mux.stack_key([{"a": 2, "b": 1}])


def test_imported_module_utils_names():
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _planner

    source = b"""
import os
import ansible.module_utils.alpha.sub
from ansible.module_utils.beta import thing
from ansible.module_utils import gamma, delta as d
from ansible_collections.ns.x.plugins.module_utils import nope
from . import relative
def f():
    from ansible.module_utils.epsilon import late
"""
    assert _planner._imported_module_utils(source) == {"alpha", "beta", "gamma", "delta", "epsilon"}


def test_custom_module_utils_send_a_module_down_ansibles_own_path(tmp_path):
    from ansible.plugins.loader import module_utils_loader

    from ansible_collections.ns.mitogen.plugins.plugin_utils import _planner

    uses_custom = b"from ansible.module_utils.nsm_custom_util import helper\n"
    uses_builtin = b"from ansible.module_utils.basic import AnsibleModule\n"
    assert not _planner._uses_custom_module_utils(uses_custom)  # no such directory yet
    (tmp_path / "nsm_custom_util.py").write_text("def helper(): pass\n")
    module_utils_loader.add_directory(str(tmp_path))
    try:
        assert _planner._uses_custom_module_utils(uses_custom)
        assert not _planner._uses_custom_module_utils(uses_builtin)
        (tmp_path / "basic.py").write_text("# shadows the builtin\n")
        assert _planner._uses_custom_module_utils(uses_builtin)
    finally:
        module_utils_loader._extra_dirs.remove(str(tmp_path.resolve()))
        module_utils_loader._clear_caches()
