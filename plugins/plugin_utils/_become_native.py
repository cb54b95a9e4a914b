# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The su and doas hop specs a task's become plugin asks for (private).

Owns: ``su_spec`` and ``doas_spec`` (the core's ``su``/``doas`` transports, see
``module_utils/mitogen/_become_methods``), built from the become plugin's own
options (``become_user``, ``become_exe``, ``become_flags``, ``become_pass``,
``prompt_l10n``); ``_become.NATIVE_SPECS`` names them by method.

Flag emulation: the interpreter is started once by the tool and then runs every
task of that become user, so ``become_flags`` go to the tool when it starts the
interpreter, where each has the meaning the tool gives it (su ``-``/``-l``/
``--login``: a login environment and the user's home; ``-s SHELL``: that shell
runs the boot command; ``-m``/``-p``: the caller's environment kept; doas ``-n``:
never ask). A flag that cannot apply to a persistent interpreter is refused with
an error that says why (``FlagError``), never dropped: su ``-c``/``-C`` (the
command is ours: the interpreter), ``-P``/``--pty`` (a terminal between su and the
interpreter would mangle its binary stream); doas ``-s`` (an interactive shell,
not a command), ``-L``/``-C`` (doas then runs nothing), ``-u`` naming another user
than ``become_user``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleError

from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words


class FlagError(AnsibleError):
    """A become flag that cannot apply to a persistent interpreter."""


_SU_REFUSED = {
    "-c": "su's -c names the command su runs, and here that command is the interpreter ns.mitogen starts",
    "--command": "su's --command names the command su runs, and here that command is the interpreter ns.mitogen starts",
    "-C": "su's -C names the command su runs, and here that command is the interpreter ns.mitogen starts",
    "--session-command": "su's --session-command names the command su runs; here that is the interpreter",
    "-P": "su -P puts a terminal between su and the interpreter, which would mangle its binary stream",
    "--pty": "su --pty puts a terminal between su and the interpreter, which would mangle its binary stream",
}
_DOAS_REFUSED = {
    "-s": "doas -s starts an interactive shell instead of a command, and here the command is the interpreter",
    "-L": "doas -L clears persisted authentication and runs nothing",
    "-C": "doas -C checks a config file and runs nothing",
}


def _password(plugin: Any) -> Optional[str]:
    password = plugin.get_option("become_pass")
    return str(password) if password else None


def _prompts(plugin: Any) -> Optional[List[str]]:
    try:
        words = plugin.get_option("prompt_l10n")
    except KeyError:
        return None
    return [str(w) for w in words] if words else None


def _refuse(method: str, flag: str, why: str) -> FlagError:
    return FlagError("ns.mitogen: become_flags %r cannot apply to a persistent %s interpreter: %s" % (flag, method, why))


def su_spec(plugin: Any, timeout: int) -> Dict[str, Any]:
    """The su hop spec the become ``plugin``'s options ask for (no interpreter named yet)."""
    flags = split_words(str(plugin.get_option("become_flags") or ""))
    for flag in flags:
        name = flag.split("=", 1)[0]
        if name in _SU_REFUSED:
            raise _refuse("su", flag, _SU_REFUSED[name])
        # bundled short options (-lP, -mc): each letter counts
        if name.startswith("-") and not name.startswith("--") and len(name) > 2:
            for letter in name[1:]:
                if "-" + letter in _SU_REFUSED:
                    raise _refuse("su", flag, _SU_REFUSED["-" + letter])
                if letter in "sgGw":  # takes a value: the rest of the word is it
                    break
    spec: Dict[str, Any] = {
        "method": "su",
        "username": str(plugin.get_option("become_user") or "root"),
        "su_path": str(plugin.get_option("become_exe") or "su"),
        "su_args": flags,
        "connect_timeout": timeout,
    }
    return _finish(spec, plugin)


def doas_spec(plugin: Any, timeout: int) -> Dict[str, Any]:
    """The doas hop spec the become ``plugin``'s options ask for (no interpreter named yet)."""
    words = split_words(str(plugin.get_option("become_flags") or ""))
    user = str(plugin.get_option("become_user") or "")
    flags: List[str] = []
    i = 0
    while i < len(words):
        flag = words[i]
        if flag in _DOAS_REFUSED:
            raise _refuse("doas", flag, _DOAS_REFUSED[flag])
        if flag == "-u" or (flag.startswith("-u") and len(flag) > 2):
            named = flag[2:] or (words[i + 1] if i + 1 < len(words) else "")
            i += 1 if flag[2:] else 2
            if user and named != user:
                raise _refuse("doas", "-u %s" % named, "it names another user than become_user %r; set only become_user" % user)
            user = named
            continue
        flags.append(flag)
        i += 1
    spec: Dict[str, Any] = {
        "method": "doas",
        "username": user or "root",
        "doas_path": str(plugin.get_option("become_exe") or "doas"),
        "doas_args": flags,
        "connect_timeout": timeout,
    }
    return _finish(spec, plugin)


def _finish(spec: Dict[str, Any], plugin: Any) -> Dict[str, Any]:
    password = _password(plugin)
    if password:
        spec["password"] = password
    prompts = _prompts(plugin)
    if prompts:
        spec["prompts"] = prompts
    return spec
