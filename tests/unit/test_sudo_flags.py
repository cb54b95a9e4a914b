"""sudo's become_flags for a persistent interpreter: kept, emulated, or refused saying why."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleError

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _methods
from ansible_collections.ns.mitogen.plugins.plugin_utils._sudo_flags import sudo_options


@pytest.mark.parametrize(
    "flags,set_home,preserve_env,args",
    [
        ("-H -S -n", True, False, []),  # vanilla's default: -S/-n are how the password is read
        ("-HSn", True, False, []),
        ("", False, False, []),
        ("--set-home --preserve-env", True, True, []),
        ("-E", False, True, []),
        ("--preserve-env=PATH,FOO", False, False, ["--preserve-env=PATH,FOO"]),
        ("-i", False, False, ["-i"]),
        ("-H --shell", True, False, ["--shell"]),
        ("-Hg adm -k", True, False, ["-g", "adm", "-k"]),
        ("-gadm", False, False, ["-g", "adm"]),
        ("-h otherhost", False, False, ["-h", "otherhost"]),
        ("--bogus-flag", False, False, ["--bogus-flag"]),  # sudo's own refusal is the task's failure
    ],
)
def test_flags_keep_their_meaning(flags, set_home, preserve_env, args):
    assert sudo_options(flags) == {"set_home": set_home, "preserve_env": preserve_env, "sudo_args": args}


@pytest.mark.parametrize(
    "flags,why",
    [
        ("-u bob", "become_user"),
        ("--user=bob", "become_user"),
        ("-HU bob", "become_user"),
        ("-b", "background"),
        ("-T 30", "task's timeout"),
        ("--command-timeout=30", "task's timeout"),
        ("-l", "lists privileges"),
        ("-e", "edits files"),
        ("-h", "help"),
    ],
)
def test_flags_that_cannot_apply_are_refused_saying_why(flags, why):
    with pytest.raises(AnsibleError, match="cannot apply to a persistent interpreter: .*%s" % why):
        sudo_options(flags)


def test_a_prompt_flag_is_not_used_and_said_so():
    said: list = []
    assert sudo_options("-H -p 'Pass:'", said.append) == {"set_home": True, "preserve_env": False, "sudo_args": []}
    assert len(said) == 1 and "-p is not used" in said[0]


@pytest.mark.parametrize("args", [["-i"], ["-s"], ["--login"], ["-Hi"], ["--shell"]])
def test_login_or_shell_flags_pass_the_command_octal_escaped(args):
    """sudo -i/-s join the command for a shell, eating newlines: none may remain."""
    argv = _methods.make({"method": "sudo", "sudo_args": args}).argv(["/bin/sh", "-c", "a\nb $x", "x"])
    command = argv[argv.index("--") + 1 :]
    assert command[:2] == ["/bin/sh", "-c"] and "\n" not in command[2] and "$" not in command[2]
    plain = _methods.make({"method": "sudo", "sudo_args": ["-g", "sys"]}).argv(["py", "-c", "a\nb"])
    assert plain[-3:] == ["py", "-c", "a\nb"]
