# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a user sets, checked and named in the user's words (private).

Owns: the checks of option values that Ansible's own ``type:`` parsing lets
through (a negative timeout, a boolean that is neither yes nor no: ansible-core
reads ``maybe`` as false), made when the options are set, before any connection
is tried, with an error naming the option and where its value came from; the
dropping of ssh arguments that would break the one persistent channel; and the
hints of the core's connection errors in the names of Ansible settings (the core
speaks in spec keys, which no Ansible user can set).
"""

from __future__ import annotations

import functools
import os
import shlex
from typing import Any, Dict, List, Mapping, Optional, Tuple

import ansible.constants as C
from ansible.errors import AnsibleOptionsError
from ansible.module_utils.parsing.convert_bool import BOOLEANS

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat

# option -> (least value, greatest value or None, what it counts)
RANGES: Dict[str, Tuple[int, Optional[int], str]] = {
    "timeout": (1, None, "a whole number of seconds"),
    "port": (1, 65535, "a port number"),
    "reconnection_retries": (0, None, "a number of retries"),
    "verbosity": (0, None, "a number of -v for ssh"),
    "ssh_debug_level": (0, 3, "a number of -v for ssh"),
    "keepalive_interval": (1, None, "a whole number of seconds"),
    "keepalive_count": (1, None, "a number of keepalives"),
    "max_interpreters": (1, None, "a number of interpreters"),
}


_SHELL_WHITESPACE = str.maketrans("\t\r\n", "   ")  # shlex's own whitespace (with " "), no more


def split_words(text: str) -> List[str]:
    """``shlex.split(text)``, without shlex where no quote or escape can change the result.

    Every task splits a few option strings (ssh args, interpreter); in a freshly
    forked worker, shlex's tokenizer costs ~0.1 ms a string, a plain split ~2 us (and no
    regex to compile: ``str.split()`` alone would split at more than shlex's whitespace).
    """
    if "'" in text or '"' in text or "\\" in text:
        return shlex.split(text)
    return [word for word in text.translate(_SHELL_WHITESPACE).split(" ") if word]


def native(value: Any) -> Any:
    """A plain str/int/float/bool/list/dict copy of an option value (no tags, no vault objects):
    what may cross to the multiplexer and a target."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [native(v) for v in value]
    if isinstance(value, dict):
        return {str(k): native(v) for k, v in value.items()}
    return str(value)


def validate(plugin: Any, task_keys: Optional[Mapping[str, Any]], var_options: Optional[Mapping[str, Any]], direct: Any) -> None:
    """Raise ``AnsibleOptionsError`` naming the first option of ``plugin`` whose value is bad."""
    definitions = C.config.get_configuration_definitions(plugin.plugin_type, _compat.plugin_load_name(plugin)) or {}
    for name, definition in definitions.items():
        kind = definition.get("type")
        if kind in ("bool", "boolean"):
            raw, origin = _raw(plugin, name, task_keys, var_options, direct)
            if origin is not None and not _is_boolean(raw):
                raise AnsibleOptionsError(
                    "%s: option %s (from %s) must be a boolean (yes/no, true/false, on/off or 1/0), not %r"
                    % (_label(plugin), name, origin, raw)
                )
        elif name in RANGES:
            value, origin = plugin.get_option_and_origin(name)
            least, most, what = RANGES[name]
            if value is not None and (value < least or (most is not None and value > most)):
                span = "from %d to %d" % (least, most) if most is not None else "from %d on" % least
                raise AnsibleOptionsError(
                    "%s: option %s (from %s) must be %s %s, not %r" % (_label(plugin), name, origin, what, span, value)
                )


def _label(plugin: Any) -> str:
    return "ns.mitogen.%s" % getattr(plugin, "method", _compat.plugin_load_name(plugin))


def _is_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return value in (0, 1)
    return isinstance(value, str) and value.strip().lower() in BOOLEANS


def _raw(
    plugin: Any, name: str, task_keys: Optional[Mapping[str, Any]], var_options: Optional[Mapping[str, Any]], direct: Any
) -> Tuple[Any, Optional[str]]:
    """The value of option ``name`` as the user wrote it, and where; (None, None) for a default or an unknown source."""
    try:
        _value, origin = plugin.get_option_and_origin(name)
    except KeyError:
        return None, None
    origin = str(origin)
    kind, _sep, key = origin.partition(": ")
    sources: Dict[str, Any] = {
        "var": var_options or {},
        "env": os.environ,
        "keyword": task_keys or {},
    }
    if origin == "Direct":
        return (direct or {}).get(name), origin
    if kind in sources and key in sources[kind]:
        return sources[kind][key], origin
    if kind == "cli":
        from ansible import context

        return context.CLIARGS.get(key), origin
    if kind in ("default", "var", "env", "keyword"):
        return None, None
    return _compat.ini_option_value(plugin, name, origin), origin


# -- ssh arguments --------------------------------------------------------------------------
#: ssh flags that take a value (from ssh(1): the rest take none).
_SSH_VALUE_FLAGS = set("BbcDEeFIiJLlmOoPpQRSWw")
#: options whose value does no harm but is kept anyway by the one persistent
#: connection (ControlMaster & co) or replaced by the channel's own (-C): dropped,
#: as documented, without a warning (Ansible's default ssh_args hold them).
_QUIET = {"controlmaster", "controlpersist", "controlpath", "compression"}
#: options that would break the channel (a terminal, no command, another command,
#: stdin from /dev/null, ssh in the background): dropped with a warning.
_BREAKING = {"requesttty", "remotecommand", "sessiontype", "stdinnull", "forkafterauthentication"}
#: flags that would break it too (-S is ControlPath: quiet, with its value)
_BREAKING_FLAGS = set("tNnfsWGVOM")


def filter_ssh_args(args: List[str]) -> Tuple[List[str], List[str]]:
    """(``args`` without what would break the persistent channel, what was dropped and must be warned about).

    Dropped quietly (documented): ``-C``, ``-S path`` and ``-o``
    ControlMaster/ControlPersist/ControlPath/Compression. Dropped with a warning:
    ``-t``, ``-N``, ``-n``, ``-f``, ``-s``, ``-W``, ``-G``, ``-V``, ``-O``, ``-M`` and ``-o``
    RequestTTY/RemoteCommand/SessionType/StdinNull/ForkAfterAuthentication.
    Combined flags (``-Ctv``) keep what is harmless (``-v``).
    """
    out: List[str] = []
    warn: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-" or arg == "--":
            out.append(arg)
            continue
        kept = ""
        j = 1
        while j < len(arg):
            flag = arg[j]
            j += 1
            if flag in _SSH_VALUE_FLAGS:
                value = arg[j:]
                if not value and i < len(args):
                    value, i = args[i], i + 1
                j = len(arg)
                dropped = _dropped_value(flag, value)
                if dropped is None:
                    if kept:
                        out.append("-" + kept)
                        kept = ""
                    out += ["-" + flag, value]
                elif dropped:
                    warn.append("-%s %s" % (flag, value))
            elif flag == "C":
                continue
            elif flag in _BREAKING_FLAGS:
                warn.append("-" + flag)
            else:
                kept += flag
        if kept:
            out.append("-" + kept)
    return out, warn


def _dropped_value(flag: str, value: str) -> Optional[bool]:
    """None: keep ``-flag value``; False: drop quietly; True: drop with a warning."""
    if flag == "S":
        return False
    if flag in "OW":
        return True
    if flag != "o":
        return None
    key = value.split("=", 1)[0].split(None, 1)[0].strip().lower() if value.strip() else ""
    if key in _QUIET:
        return False
    if key in _BREAKING:
        return True
    return None


# -- hints ----------------------------------------------------------------------------------
#: the core's hints (its spec's words) -> what an Ansible user can set
_HINTS = {
    "add the host key to known_hosts, or turn host key checking off": (
        "add the host key to known_hosts, or set host_key_checking = False ([defaults] in ansible.cfg, "
        "ANSIBLE_HOST_KEY_CHECKING=False or ansible_host_key_checking), or pass "
        "-o StrictHostKeyChecking=accept-new in ansible_ssh_common_args"
    ),
    "raise the connect timeout, or check the host": (
        "raise the timeout (ansible_ssh_timeout, ANSIBLE_TIMEOUT or timeout in [defaults] of ansible.cfg), or check the host"
    ),
    "set the python interpreter to one that exists on the target": (
        "set ansible_python_interpreter to an interpreter that exists on the target"
    ),
    "check the username, key or password": (
        "check ansible_user, the key (ansible_ssh_private_key_file) or the password (ansible_password)"
    ),
    "check the password for this user": "check ansible_password for this user",
    "check the hostname": "check ansible_host",
    "check the host and port": "check ansible_host and ansible_port",
    "set the sudo (become) password": "set the become password (ansible_become_password, or --ask-become-pass)",
    "check the sudo password": "check the become password (ansible_become_password)",
    "check the sudo password for this user": "check the become password (ansible_become_password) for this user",
    "check the become user": "check become_user",
}
_PYTHON_HINT = "point the python interpreter setting at Python "


def ansible_hint(hint: str) -> str:
    """``hint`` (the core's) in the names of the settings an Ansible user has."""
    if hint.startswith(_PYTHON_HINT):
        return "set ansible_python_interpreter to Python " + hint[len(_PYTHON_HINT) :]
    return _HINTS.get(hint, hint)


def pty_closed_notice(args: List[str], host: str) -> bytes:
    """What ssh run with ``args`` prints on stderr as a session on a pty (``-tt``) ends.

    "Shared connection to HOST closed." over a persistent master (ansible's default
    ``ControlMaster=auto`` with ``ControlPersist``), "Connection to HOST closed."
    without one, nothing when ssh is quiet (``-q``, ``LogLevel`` below INFO).
    """
    option = functools.partial(api.option_value, args)
    if "-q" in args or (option("LogLevel") or "INFO").upper() in ("QUIET", "FATAL", "ERROR"):
        return b""
    master = (option("ControlMaster") or "no").lower() not in ("no", "false")
    persist = (option("ControlPersist") or "no").lower() not in ("no", "false")
    text = "%s to %s closed.\r\n" % ("Shared connection" if master and persist else "Connection", host)
    return text.encode("utf-8", "replace")
