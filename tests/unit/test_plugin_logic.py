"""Pure logic of the Ansible-side plugins: ssh argument filtering, redirection, stack keys."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("ansible")

from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _options, _original, _strategy, _via  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils._options import filter_ssh_args  # noqa: E402


def test_connection_sharing_options_are_dropped():
    args = ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-oControlPath=/x", "-o", "User=a", "-v"]
    assert filter_ssh_args(args) == (["-o", "User=a", "-v"], [])
    assert filter_ssh_args(["-o", "Compression yes", "-S", "/cp", "-Cq"]) == (["-q"], [])


def test_options_that_would_break_the_channel_are_dropped_with_a_warning():
    args = ["-tt", "-o", "RequestTTY=force", "-vCn", "-oRemoteCommand=top", "-W", "h:22", "-N", "-p", "22"]
    kept, warned = filter_ssh_args(args)
    assert kept == ["-v", "-p", "22"]
    assert warned == ["-t", "-t", "-o RequestTTY=force", "-n", "-o RemoteCommand=top", "-W h:22", "-N"]


def test_values_are_never_read_as_flags():
    """``-o``/``-i``/``-J`` values (attached or not) stay as they are, whatever letters they hold."""
    args = ["-i", "/keys/-tNnf", "-J", "jump", "-oProxyCommand=nc -N %h %p", "-F", "/dev/null", "-4", "host-ignored"]
    assert filter_ssh_args(args) == (
        ["-i", "/keys/-tNnf", "-J", "jump", "-o", "ProxyCommand=nc -N %h %p", "-F", "/dev/null", "-4", "host-ignored"],
        [],
    )


def test_hints_name_settings_an_ansible_user_has():
    """Regression: the host-key hint said "set check_host_keys", a spec key no user can set."""
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _methods

    ssh = _methods.make({"method": "ssh", "hostname": "h"})
    sudo = _methods.make({"method": "sudo"})
    outputs = [
        "Host key verification failed.",
        "@@@ REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
        "Permission denied (publickey).",
        "ssh: Could not resolve hostname x",
        "connect to host x port 22: Connection refused",
        "python3: not found",
    ]
    hints = [ssh.explain(out, 255)[1] for out in outputs]
    hints += [sudo.explain(out, 1)[1] for out in ("sudo: a password is required", "Sorry, try again", "unknown user x")]
    hints += ["raise the connect timeout, or check the host", "point the python interpreter setting at Python 3.9 or newer"]
    for hint in hints:
        text = _options.ansible_hint(hint)
        assert "check_host_keys" not in text and "connect timeout" not in text and "python interpreter setting" not in text
    assert "host_key_checking" in _options.ansible_hint(ssh.explain("Host key verification failed.", 255)[1])
    assert "ANSIBLE_HOST_KEY_CHECKING" in _options.ansible_hint(ssh.explain("Host key verification failed.", 255)[1])
    assert "ansible_ssh_timeout" in _options.ansible_hint("raise the connect timeout, or check the host")


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

    def uses_custom(source: bytes) -> bool:
        return _planner._provided_by_custom_dirs(_planner._imported_module_utils(source))

    custom = b"from ansible.module_utils.nsm_custom_util import helper\n"
    builtin = b"from ansible.module_utils.basic import AnsibleModule\n"
    assert not uses_custom(custom)  # no such directory yet
    (tmp_path / "nsm_custom_util.py").write_text("def helper(): pass\n")
    module_utils_loader.add_directory(str(tmp_path))
    try:
        assert uses_custom(custom)
        assert not uses_custom(builtin)
        (tmp_path / "basic.py").write_text("# shadows the builtin\n")
        assert uses_custom(builtin)
    finally:
        module_utils_loader._extra_dirs.remove(str(tmp_path.resolve()))
        module_utils_loader._clear_caches()


def test_module_file_facts_are_cached_until_the_file_changes(tmp_path):
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _planner

    path = tmp_path / "nsm_cached.py"
    path.write_bytes(b"from ansible.module_utils.basic import AnsibleModule\n")
    first = _planner._module_file(str(path))
    assert first.new_style and first.module_utils == {"basic"}
    assert _planner.source_for(first.source_id) == path.read_bytes()
    assert _planner._module_file(str(path)) is first  # unchanged: nothing read again
    path.write_bytes(b"#!/bin/sh\necho WANT_JSON\n")
    second = _planner._module_file(str(path))
    assert second is not first and not second.new_style and second.source_id != first.source_id
    assert _planner.source_for(second.source_id) is None  # only sources the runner can use are kept


def test_a_marker_stands_for_its_request_once_in_its_own_process():
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _planner

    request = {"name": "ansible.modules.ping", "args": "{}"}
    marker = _planner.Plan(request, "/x/ping.py").marker()
    assert marker.startswith(_planner.MARKER) and len(marker) < 64
    assert _planner.decode_marker(b"plain stdin") is None
    assert _planner.decode_marker(marker) is request
    with pytest.raises(KeyError):  # spent, or another process's: never run as a command's input
        _planner.decode_marker(marker)


def test_split_words_is_shlex_split():
    import random
    import shlex

    from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words

    fixed = ["", "  ", "-o A=b  -o C=d", "a\tb\nc\rd", "x\x0by", "x\xa0y", "'a b' c", 'a "b c"', "a\\ b", "#c d"]
    rng = random.Random(4711)
    alphabet = "ab =-#'\"\\\t\n\x0b\xa0"
    generated = ["".join(rng.choice(alphabet) for _n in range(rng.randrange(12))) for _i in range(3000)]
    for text in fixed + generated:
        try:
            expected = shlex.split(text)
        except ValueError:  # unbalanced quotes: shlex's own error, from split_words too
            with pytest.raises(ValueError):
                split_words(text)
            continue
        assert split_words(text) == expected, repr(text)


@pytest.mark.parametrize(
    ("args", "notice"),
    [
        (["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s"], b"Shared connection to h closed.\r\n"),
        (["-oControlMaster=auto"], b"Connection to h closed.\r\n"),  # no ControlPersist: the first ssh is the master
        (["-o", "ControlMaster=no", "-o", "ControlPersist=60s"], b"Connection to h closed.\r\n"),
        ([], b"Connection to h closed.\r\n"),
        (["-q", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s"], b""),
        (["-o", "LogLevel=ERROR"], b""),
        (["-o", "LogLevel verbose", "-o", "LogLevel=QUIET"], b"Connection to h closed.\r\n"),  # ssh keeps the first
    ],
)
def test_pty_closed_notice_is_the_one_ssh_prints(args, notice):
    assert _options.pty_closed_notice(args, "h") == notice


@pytest.mark.parametrize(
    "value, hop",
    [
        ("bastion", ("bastion", None, None)),
        ("  ops@bastion.dc1 ", ("bastion.dc1", "ops", None)),
        ("sudo:root@bastion", ("bastion", "root", "sudo")),
        ("community.general.pbrun:app@gw", ("gw", "app", "community.general.pbrun")),
    ],
)
def test_via_forms(value, hop):
    parsed = _via.parse(value, ["t"])
    assert (parsed.host, parsed.user, parsed.method) == hop


@pytest.mark.parametrize("value", ["", "  ", "a@b@c", "sudo:bastion", "a b", "@bastion", "ops@", None, 3, ["h"]])
def test_malformed_via_is_refused_naming_the_chain(value):
    with pytest.raises(_via.ViaError, match=r"mitogen_via of t -> b is .*: expected host, user@host or become_method"):
        _via.parse(value, ["t", "b"])


@pytest.mark.parametrize(
    "connection, name",
    [
        ("ns.mitogen.podman", "mitogen_podman_path"),
        ("ns.mitogen.docker", "mitogen_docker_path"),
        ("ns.mitogen.buildah", "mitogen_buildah_path"),
        ("ns.mitogen.setns", "mitogen_docker_path"),
        ("ns.mitogen.setns", "mitogen_kind"),
        ("ns.mitogen.lxd", "mitogen_lxc_path"),
    ],
)
def test_an_original_name_its_connection_reads_is_not_warned_about(connection, name):
    """The strategy's check of a host's variables (it once said "no effect" for a podman
    host's mitogen_podman_path, which ns.mitogen.podman honours)."""
    warned: list = []
    _original.check_vars({name: "/x"}, warned.append, connection)
    assert warned == []
    _original.check_vars({name: "/x"}, warned.append, "ns.mitogen.ssh")
    assert len(warned) == 1 and "has no effect on this connection: it is an option of" in warned[0], warned
    assert connection in warned[0], warned


def test_an_unknown_original_path_name_is_warned_about():
    warned: list = []
    _original.check_vars({"mitogen_foo_path": "/x"}, warned.append, "ns.mitogen.ssh")
    assert warned == ["ns.mitogen: mitogen_foo_path has no effect: " + _original._NO_READER]


def test_every_original_name_a_connection_checks_is_one_that_loads_original():
    # _specs loads _original only where such an option or environment variable is set
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _specs

    assert [n for n in _original.VARIABLES if not n.startswith(_specs.ORIGINAL_OPTION_PREFIX)] == []
    assert sorted(_specs.ORIGINAL_ENVIRONMENT) == sorted(_original.ENVIRONMENT)
    assert _original._PATH_VARIABLE.match(_specs.ORIGINAL_OPTION_PREFIX + "x_path")


@pytest.mark.parametrize("name", ["_bundle.py", "__init__.py"])
def test_a_bundled_modules_spec_is_the_one_spec_from_file_location_makes(name):
    import importlib.util

    from ansible_collections.ns.mitogen.plugins.plugin_utils import _bundle

    path = os.path.join(os.path.dirname(_bundle.__file__), name)
    loader = _bundle.BundledLoader("ns_mitogen_probe.x", path, memoryview(b""))
    ours = _bundle.module_spec("ns_mitogen_probe.x", path, loader)
    theirs = importlib.util.spec_from_file_location("ns_mitogen_probe.x", path, loader=loader)
    assert theirs is not None
    for attribute in ("name", "loader", "origin", "has_location", "cached", "parent", "submodule_search_locations"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute


def test_a_bundled_modules_cached_name_follows_the_pycache_prefix(monkeypatch):
    import importlib.util

    from ansible_collections.ns.mitogen.plugins.plugin_utils import _bundle

    path = _bundle.__file__
    for prefix in (None, "/tmp/nsm-pycache-probe", None):
        monkeypatch.setattr(sys, "pycache_prefix", prefix)
        spec = _bundle.module_spec("ns_mitogen_probe.x", path, None)
        assert spec.cached == importlib.util.cache_from_source(path), prefix


def test_the_connection_reports_round_trips_where_roundtrips_would():
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _connection, _roundtrips

    assert _connection.ROUND_TRIPS_ENV == _roundtrips.ENV
