"""su and doas: their hop specs from the real become plugins, argv, prompts, failures (no processes)."""

from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible.plugins.loader import become_loader  # noqa: E402

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _become_methods, _methods  # noqa: E402
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils import _become, _become_native  # noqa: E402

SU = {"method": "su", "username": "nsm-su", "password": "pw"}


def _plugin(name: str, **options: object):
    plugin = become_loader.get(name)
    plugin.set_options(direct=options)
    return plugin


def test_su_and_doas_are_transports_of_the_core():
    assert _methods.METHODS["su"] is _become_methods.Su
    assert _methods.METHODS["doas"] is _become_methods.Doas


def test_su_passes_flags_before_the_user_and_the_boot_command_to_c():
    t = _methods.make(dict(SU, su_args=["-", "-s", "/bin/sh"]))
    assert t.argv(["/usr/bin/python3", "-c", "x y"]) == ["su", "-", "-s", "/bin/sh", "nsm-su", "-c", "/usr/bin/python3 -c 'x y'"]
    assert t.use_pty and t.password_on_stdin and t.describe() == "su:nsm-su"


@pytest.mark.parametrize(
    "prompt",
    [
        "Password: ",
        "Passwort: ",  # PAM in de_DE
        "Mot de passe\u00a0: ",  # French PAM: a non-breaking space before the colon
        "Password",  # no colon
        "密码：",  # a full-width colon
        "\r\nPassword:\r\n",
    ],
)
def test_su_answers_its_prompt_in_any_language_once(prompt):
    t = _methods.make(SU)
    assert t.on_text("stderr", prompt) == b"pw\n"
    with pytest.raises(ConnectError, match="Incorrect su password for user 'nsm-su'"):
        t.on_text("stderr", prompt + "\n" + prompt)


def test_su_does_not_answer_text_that_only_mentions_a_password():
    t = _methods.make(SU)
    assert t.on_text("stderr", "Password expired: change it soon\n") is None
    assert t.on_text("stderr", "su: Authentication failure\n") is None


def test_su_prompt_without_a_password_fails_at_once_with_vanilla_words():
    t = _methods.make(dict(SU, password=None))
    with pytest.raises(ConnectError, match="Missing su password"):
        t.on_text("stderr", "Password: ")


def test_su_exit_after_a_typed_password_is_a_refused_password_in_any_language():
    t = _methods.make(SU)
    t.on_text("stderr", "Passwort: ")
    reason, _hint = t.explain("Passwort: su: Fehler bei Authentifizierung", 1)
    assert reason == "Incorrect su password for user 'nsm-su' (refused)"


def test_su_custom_prompts_replace_the_built_in_words():
    t = _methods.make(dict(SU, prompts=["Kennwort"]))
    assert t.on_text("stderr", "Password: ") is None
    assert t.on_text("stderr", "Password: Kennwort: ") == b"pw\n"


def test_doas_is_non_interactive_without_a_password():
    assert _methods.make({"method": "doas"}).argv(["py"]) == ["doas", "-n", "-u", "root", "py"]
    with_pw = _methods.make({"method": "doas", "password": "pw", "doas_args": ["-s"]})
    assert with_pw.argv(["py"]) == ["doas", "-s", "-u", "root", "py"]


def test_doas_answers_its_tty_prompt_and_explains_its_failures():
    t = _methods.make({"method": "doas", "username": "root", "password": "pw"})
    assert t.on_text("tty", "\rdoas (nsm-sudopw@vm) password: ") == b"pw\n"
    assert "Incorrect doas password" in t.explain("doas: Authentication failed", 1)[0]
    assert "Missing doas password" in _methods.make({"method": "doas"}).explain("doas: Authentication required", 1)[0]


def test_doas_custom_prompts_are_the_plugins_regular_expressions_at_a_line_start():
    t = _methods.make({"method": "doas", "password": "pw", "prompts": [r"doas \(", r"Kennwort f.r"]})
    assert t.on_text("tty", "note: doas (x@y) asks\r\n") is None
    assert t.on_text("tty", "\rdoas (u@h) password: ") == b"pw\n"
    other = _methods.make({"method": "doas", "password": "pw", "prompts": [r"Kennwort f.r"]})
    assert other.on_text("tty", "\rdoas (u@h) password: ") is None
    assert other.on_text("tty", "\nKennwort für u: ") == b"pw\n"


def test_su_spec_from_the_real_su_plugin():
    plugin = _plugin("su", become_user="nsm-su", become_pass="pw", become_flags="- -s /bin/sh", become_exe="/bin/su")
    spec = _become_native.su_spec(plugin, 30)
    assert spec == {
        "method": "su",
        "username": "nsm-su",
        "su_path": "/bin/su",
        "su_args": ["-", "-s", "/bin/sh"],
        "connect_timeout": 30,
        "password": "pw",
    }
    _methods.make(spec)  # the core takes it


@pytest.mark.parametrize("flags", ["-c id", "--command=id", "-P", "--pty", "-lP", "-C id"])
def test_su_flags_that_cannot_apply_to_a_persistent_interpreter_are_refused(flags):
    plugin = _plugin("su", become_user="nsm-su", become_flags=flags)
    with pytest.raises(_become_native.FlagError, match="cannot apply to a persistent su interpreter"):
        _become_native.su_spec(plugin, 30)


def test_su_value_of_s_is_not_read_as_flags():
    plugin = _plugin("su", become_flags="-s/bin/cPsh")
    assert _become_native.su_spec(plugin, 30)["su_args"] == ["-s/bin/cPsh"]


def test_su_prompt_l10n_goes_to_the_core():
    plugin = _plugin("su", prompt_l10n=["Kennwort"])
    assert _become_native.su_spec(plugin, 30)["prompts"] == ["Kennwort"]


def test_doas_spec_flags_and_its_u_rule():
    """The options are read by name; ansible's su plugin has the doas plugin's names
    (community.general's loader is not set up in unit tests: the playbook tests run it)."""
    plugin = _plugin("su", become_user="root", become_flags="-n -u root")
    assert _become_native.doas_spec(plugin, 30)["doas_args"] == ["-n"]
    plugin = _plugin("su", become_user="", become_flags="-u nsm-key")
    assert _become_native.doas_spec(plugin, 30)["username"] == "nsm-key"
    plugin = _plugin("su", become_user="root", become_flags="-unsm-key")
    with pytest.raises(_become_native.FlagError, match="another user than become_user 'root'"):
        _become_native.doas_spec(plugin, 30)
    for flag in ("-s", "-L", "-C /etc/doas.conf"):
        with pytest.raises(_become_native.FlagError, match="persistent doas interpreter"):
            _become_native.doas_spec(_plugin("su", become_flags=flag), 30)


def test_su_and_doas_are_supported_become_methods():
    plugin = _plugin("su")
    _become.check_supported(plugin)
    assert _become.short_name(plugin) == "su" and {"su", "doas", "community.general.doas"} <= set(_become.NATIVE_SPECS)
