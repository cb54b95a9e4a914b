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
