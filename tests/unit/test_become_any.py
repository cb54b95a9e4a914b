"""The controller's judgement of a become tool's output, with ansible-core's own su and sudo plugins.

``BecomeService`` (``plugin_utils/_become_service``) runs each plugin's own checks in
``ansible.builtin.ssh``'s order; here it is fed what the tools print, line by line or
cut anywhere, and must answer as vanilla would: the password once, then vanilla's words.
"""

from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible.plugins.loader import become_loader  # noqa: E402

from ansible_collections.ns.mitogen.plugins.plugin_utils import _become  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils._become_any import plugin_spec  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils._become_service import BecomeService  # noqa: E402

VIA = 7


def _start(name, **options):
    plugin = become_loader.get(name)
    plugin.set_options(direct=dict(options, become_user="nsm-su"))
    service = BecomeService(0)
    spec = plugin_spec(plugin, 30, "/bin/sh")
    spec["plugin"] = name  # the short name: no collection loader in unit tests
    prepared = service.prepare(spec, VIA)
    assert "options" not in prepared and prepared["service_context"] == 0
    built = service.build(caller=VIA, token=prepared["token"], command="python3 -c boot")
    return service, built


def _examine(service, built, channel, output):
    return service.examine(caller=VIA, session=built["session"], channel=channel, output=output)


def test_su_prompt_cut_anywhere_is_answered_once_then_a_second_one_is_a_wrong_password():
    service, built = _start("su", become_pass="s3cret")
    assert built["command"].startswith("su  nsm-su -c ") and "python3 -c boot" in built["command"]
    assert _examine(service, built, "stderr", b"Pass") == {}
    assert _examine(service, built, "stderr", b"word: ") == {"answer": b"s3cret\n"}
    verdict = _examine(service, built, "stderr", b"\nPassword: ")
    assert verdict["error"] == "Incorrect su password"
    with pytest.raises(ValueError, match="unknown become session"):  # a verdict ends the dialogue
        _examine(service, built, "stderr", b"more")


def test_su_refusal_words_are_vanillas():
    service, built = _start("su", become_pass="s3cret")
    assert _examine(service, built, "tty", b"Password: ")["answer"] == b"s3cret\n"
    assert _examine(service, built, "stderr", b"su: Authentication failure\n")["error"] == "Incorrect su password"


def test_a_prompt_without_a_password_fails_at_once_as_missing():
    service, built = _start("su")
    assert _examine(service, built, "stderr", b"Password: ")["error"] == "Missing su password"


def test_sudo_without_a_password_judged_from_its_last_words():
    service, built = _start("sudo")
    assert " -n " in built["command"]
    assert _examine(service, built, "end", b"sudo: a password is required\n")["error"] == "Missing sudo password"


def test_success_marker_ends_the_dialogue():
    service, built = _start("sudo", become_pass="s3cret")
    marker = built["command"].split("BECOME-SUCCESS-")[1][:32]
    assert _examine(service, built, "stdout", b"BECOME-SUCCESS-%s\r\n" % marker.encode()) == {"success": True}


def test_a_token_serves_one_start_of_the_context_it_was_made_for():
    plugin = become_loader.get("su")
    plugin.set_options(direct={"become_pass": "s3cret"})
    service = BecomeService(0)
    spec = dict(plugin_spec(plugin, 30, "/bin/sh"), plugin="su")
    token = service.prepare(spec, VIA)["token"]
    with pytest.raises(ValueError, match="unknown become token"):
        service.build(caller=VIA + 1, token=token, command="x")
    token = service.prepare(spec, VIA)["token"]
    service.build(caller=VIA, token=token, command="x")
    with pytest.raises(ValueError, match="unknown become token"):
        service.build(caller=VIA, token=token, command="x")


@pytest.mark.parametrize("name", ["runas", "ansible.builtin.runas"])
def test_runas_is_refused_saying_why(name):
    plugin = become_loader.get("runas")
    plugin.ansible_name = name
    with pytest.raises(Exception, match="runs only on Windows targets"):
        _become.check_supported(plugin)


def test_sudo_su_and_doas_are_native_and_others_run_through_their_plugin():
    sudo, su, site = become_loader.get("sudo"), become_loader.get("su"), become_loader.get("su")
    for plugin in (sudo, su, site):
        plugin.set_options(direct={})
    site.ansible_name = "site.tools.su"  # a site's own plugin, whatever its code
    assert (_become.native_spec(sudo, 30) or {}).get("method") == "sudo"
    assert (_become.native_spec(su, 30) or {}).get("method") == "su"
    assert _become.native_spec(site, 30) is None
    _become.check_supported(site)


def test_plugins_load_one_at_a_time(monkeypatch):
    """Regression: two hosts' hops loading community.general.sudosu at once in the mux's
    threads saw its module half-executed ("has no attribute 'BecomeModule'"): Ansible's
    plugin loaders are not thread-safe, so every load holds one lock."""
    from ansible.plugins import loader

    from ansible_collections.ns.mitogen.plugins.plugin_utils import _become_service

    seen = []
    real_get, real_shell = become_loader.get, loader.get_shell_plugin

    def get(*args, **kwargs):
        seen.append(_become_service._LOADING.locked())
        return real_get(*args, **kwargs)

    def get_shell_plugin(**kwargs):
        seen.append(_become_service._LOADING.locked())
        return real_shell(**kwargs)

    monkeypatch.setattr(become_loader, "get", get)
    monkeypatch.setattr(loader, "get_shell_plugin", get_shell_plugin)
    _start("sudo")
    assert seen[1:] == [True, True]  # the first is the test's own load of the plugin
