# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sudo's ``become_flags`` for a persistent interpreter (private).

Owns: turning a task's sudo ``become_flags`` into the sudo hop's spec options
(``set_home``, ``preserve_env``, ``sudo_args``), with each flag's meaning kept:

- ``-H``/``--set-home`` and ``-E``/``--preserve-env``: as given (vanilla's default
  flags have ``-H``; without it, sudo's own policy sets HOME).
- ``-i``/``--login`` and ``-s``/``--shell``: passed to sudo; the interpreter then
  starts through the target's login shell (or the shell), with its environment
  and, for ``-i``, its home as working directory, as vanilla's modules see them
  (the core's ``through_shell`` makes the command survive sudo's quoting).
- ``-n``/``--non-interactive`` and ``-S``/``--stdin``: how vanilla has sudo read the
  password (and vanilla drops ``-n`` when it has one). Here sudo runs on a private
  terminal and the password is typed at its prompt; a prompt with no password
  fails at once as "Missing sudo password": the flags' effect, kept.
- ``-p``/``--prompt``: ours is needed to find the prompt: the flag is not used,
  with a warning once.
- Refused, with a message saying why: ``-u``/``-U`` (the user is ``become_user``),
  ``-b`` (a background command ends sudo at once: the interpreter's end could no
  longer be told), ``-T`` (a command timeout would end the interpreter that serves
  every later task, not one task), and what runs no command (``-e``, ``-l``,
  ``-v``, ``-K``, ``-V``, ``-h`` alone).
- Every other flag (``-g``, ``-C``, ``-D``, ``-r``, ``-t``, ``-R``, ``-P``, ``-k``,
  ``-A``, ``-B``, unknown ones) goes to sudo as given: sudo's own refusal then
  fails the task as vanilla's does (a module failure with sudo's words).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.errors import AnsibleError

from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words

# short flags that take a value (sudo 1.9: sudo -h)
_WITH_VALUE = set("CDghprRtTUu")
_LONG_WITH_VALUE = {
    "--close-from",
    "--chdir",
    "--group",
    "--host",
    "--prompt",
    "--chroot",
    "--role",
    "--type",
    "--command-timeout",
    "--other-user",
    "--user",
}
_SHORT = {
    "--set-home": "-H",
    "--preserve-env": "-E",
    "--login": "-i",
    "--shell": "-s",
    "--non-interactive": "-n",
    "--stdin": "-S",
    "--prompt": "-p",
    "--user": "-u",
    "--other-user": "-U",
    "--background": "-b",
    "--command-timeout": "-T",
    "--edit": "-e",
    "--list": "-l",
    "--validate": "-v",
    "--remove-timestamp": "-K",
    "--version": "-V",
    "--help": "-h",
}
_REFUSED = {
    "-u": "the user to become is become_user (ansible_become_user): set that instead",
    "-U": "the user to become is become_user (ansible_become_user): set that instead",
    "-b": "a command run in the background ends sudo at once, and ns.mitogen could no longer tell its interpreter ended",
    "-T": "a command timeout would end the interpreter that serves every later task as this user, not one "
    "task: use the task's timeout instead",
    "-e": "it edits files instead of running a command",
    "-l": "it lists privileges instead of running a command",
    "-v": "it validates credentials instead of running a command",
    "-K": "it removes the credential cache instead of running a command",
    "-V": "it prints sudo's version instead of running a command",
}
_HELP = "it prints sudo's help instead of running a command"  # -h alone; -h HOST is a host


def _tokens(words: List[str]) -> List[Tuple[str, List[str], bool]]:
    """``words`` as (flag, its words, whether it has a value); a short cluster split up."""
    out: List[Tuple[str, List[str], bool]] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--"):
            name, eq, _value = word.partition("=")
            if eq:
                out.append((name, [word], True))
            elif name in _LONG_WITH_VALUE and i < len(words):
                out.append((name, [word, words[i]], True))
                i += 1
            else:
                out.append((name, [word], False))
        elif word.startswith("-") and len(word) > 1:
            for j, letter in enumerate(word[1:], 1):
                if letter in _WITH_VALUE and (word[j + 1 :] or i < len(words)):
                    value = word[j + 1 :]
                    if not value:
                        value, i = words[i], i + 1
                    out.append(("-" + letter, ["-" + letter, value], True))
                    break
                out.append(("-" + letter, ["-" + letter], False))
        else:
            out.append((word, [word], False))  # not a flag: sudo says what it makes of it
    return out


def sudo_options(flags: str, warn: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """The sudo hop's ``set_home``, ``preserve_env`` and ``sudo_args`` for ``become_flags``.

    Raises ``AnsibleError`` for a flag that cannot apply to a persistent interpreter
    (the message says why); ``warn`` is told about a flag not used (``-p``).
    """
    options: Dict[str, Any] = {"set_home": False, "preserve_env": False, "sudo_args": []}
    for name, words, has_value in _tokens(split_words(flags)):
        flag = _SHORT.get(name, name)
        why = _REFUSED.get(flag) or (_HELP if flag == "-h" and not has_value else None)
        if why:
            raise AnsibleError(
                "ns.mitogen: become_flags %r: sudo's %s cannot apply to a persistent interpreter: %s" % (flags, name, why)
            )
        if flag == "-H":
            options["set_home"] = True
        elif flag == "-E" and not has_value:
            options["preserve_env"] = True
        elif flag in ("-n", "-S"):
            continue
        elif flag == "-p":
            if warn is not None:
                warn(
                    "ns.mitogen: become_flags: sudo's %s is not used: ns.mitogen answers sudo at its own prompt "
                    "(on a private terminal); remove it from become_flags" % name
                )
        else:
            options["sudo_args"].extend(words)
    return options
