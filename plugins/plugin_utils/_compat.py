# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every use of ansible-core's private API, and every difference between its versions (private).

Owns: the few places where 2.16 ... 2.21 disagree and we must follow: what
``ActionBase._configure_module`` returns, how module arguments are encoded for a
module, a module's serialization profile, which interpreter discovery picks, the
oldest target Python a release's modules run on, and the package stubs AnsiballZ
puts in a module's zip. Supporting a new ansible-core release should mean reading
this file and changing only it.

The rule this file keeps (``tests/unit/test_boundaries.py`` checks what ast can
see of it): ns.mitogen uses ansible-core's private API here and nowhere else (with
``_compat_hooks``, split from this file: the hooks on ansible-core's classes).
Private means: any module under ``ansible.executor``, ``ansible._internal`` or
``ansible.module_utils._internal``; any ``_``-prefixed name of an ansible module
(``module_common._get_ansible_module_fqn``, ``C.config._parsers``); any
``_``-prefixed attribute of an ansible object that is not the plugin API below
(``action._discovery_warnings``, ``action._compute_environment_string``,
``iterator._play``, ``plugin._load_name``), and patching a class of ansible-core
(``ActionBase._configure_module``). The plugin API, used anywhere: the public
modules (``ansible.errors``, ``ansible.constants``, ``ansible.plugins.loader``,
``ansible.utils.display``, ...), and the attributes and methods of the base class
a plugin extends that every plugin of that type uses, on that plugin or on the
plugin object Ansible hands to our code: ConnectionBase's ``_play_context``,
``_shell``, ``_connected``; ActionBase's ``_task``, ``_connection``,
``_play_context``, ``_shared_loader_obj``; StrategyBase's ``_variable_manager``
and the methods a strategy extends (``run``, ``_queue_task``, ``_execute_meta``).
"""

from __future__ import annotations

import ast
import json
import os
from typing import Any, Dict, List, Optional, Tuple, Type

import ansible.constants as C
from ansible.executor import module_common
from ansible.release import __author__ as ANSIBLE_AUTHOR
from ansible.release import __version__ as ANSIBLE_VERSION

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import CORE_MIN_PYTHON

VERSION: Tuple[int, int] = tuple(int(p) for p in ANSIBLE_VERSION.split(".")[:2])  # type: ignore[assignment]

_ASYNC_STEP: List[bool] = []


def async_wrapper_halves_step() -> bool:
    """Whether this ansible-core's ``async_wrapper`` looks at a job every half limit when
    the limit is under its 5 s step (so ``async: 1`` is killed after ~1 s), rather than
    every 5 s after a first step (killed after ~10 s).

    Read from its own source, once: the change came with 2.18 and was backported to
    some patch releases of older branches (2.16.20 has it, 2.17.14 not), so the
    version alone does not say. If the file cannot be read: as 2.18 and later.
    """
    if not _ASYNC_STEP:
        import ansible

        path = os.path.join(os.path.dirname(os.path.abspath(ansible.__file__)), "modules", "async_wrapper.py")
        try:
            with open(path, "rb") as fp:
                halves = b"step >= remaining" in fp.read()
        except OSError:
            halves = VERSION >= (2, 18)
        _ASYNC_STEP.append(halves)
    return _ASYNC_STEP[0]


# 2.19 introduced data tagging, serialization profiles and _BuiltModule.
_BUILT_MODULE = getattr(module_common, "_BuiltModule", None)


def _target_python_min() -> str:
    """The oldest target Python ("3.N") both the core and this release's modules run on.

    ``basic._PY_MIN`` names the release's from 2.17 on ((3, 7) in 2.17, (3, 8) in 2.18
    and 2.19, (3, 9) from 2.20); 2.16's is a boolean, true on 2.7 or 3.6+ (the core
    runs no Python 2). So: 3.6 under 2.16, 3.7 under 2.17, 3.8 under 2.18 and 2.19,
    3.9 from 2.20.
    """
    from ansible.module_utils import basic

    release = getattr(basic, "_PY_MIN", None)
    floor = tuple(release[:2]) if isinstance(release, tuple) else (3, 6)  # 2.16's _PY3_MIN
    return "%d.%d" % max(CORE_MIN_PYTHON, floor)


#: passed on as the connection spec's ``python_min`` (discovery skips older candidates)
TARGET_PYTHON_MIN = _target_python_min()


def ansiballz_package_stubs() -> Dict[str, bytes]:
    """``ansible`` and ``ansible.module_utils`` as AnsiballZ serves them to a module.

    ``recursive_finder`` (2.16 to 2.21 alike) writes these in place of the packages'
    own ``__init__``: ``ansible`` carries the controller's ``__version__`` and
    ``__author__``, and both extend their ``__path__`` over the target's
    ``sys.path``. The runner serves the same text, so ``ansible.__version__``
    works in a module as under AnsiballZ.
    """
    extend = b"from pkgutil import extend_path\n__path__=extend_path(__path__,__name__)\n"
    release = b'__version__="%s"\n__author__="%s"\n' % (ANSIBLE_VERSION.encode(), ANSIBLE_AUTHOR.encode())
    return {"ansible": extend + release, "ansible.module_utils": extend}


def module_profile(source: bytes) -> Optional[str]:
    """The module's serialization profile (2.19+), or None where profiles do not exist."""
    if _BUILT_MODULE is None:
        return None
    get_metadata = getattr(module_common, "_get_module_metadata", None)
    if get_metadata is None:
        return "legacy"

    if not C.config.get_config_value("_MODULE_METADATA"):
        return "legacy"  # metadata is experimental and off: every module is legacy
    return str(get_metadata(ast.parse(source)).serialization_profile)


def module_args_json(module_args: Any, profile: Optional[str]) -> str:
    """``{"ANSIBLE_MODULE_ARGS": ...}`` exactly as AnsiballZ would hand it to the module."""
    params = {"ANSIBLE_MODULE_ARGS": module_args}
    if profile is not None:
        from ansible.module_utils.common.json import Direction, get_module_encoder

        return json.dumps(params, cls=get_module_encoder(profile, Direction.CONTROLLER_TO_MODULE))
    from ansible.module_utils.common.json import AnsibleJSONEncoder

    return json.dumps(params, cls=AnsibleJSONEncoder, vault_to_text=True)


def preload() -> None:
    """Import, in the main process, the module serializers every worker would import.

    (2.19+ imports a JSON profile module on first use: ours to encode arguments,
    Ansible's own to decode results; a forked worker inherits them from here.)
    """
    if _BUILT_MODULE is None:
        return
    from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder

    for profile in ("legacy", "modern"):
        for direction in Direction:
            get_module_encoder(profile, direction)
            get_module_decoder(profile, direction)


def configure_module_result(data: bytes, shebang: str, profile: Optional[str], module_path: str) -> Any:
    """What ``ActionBase._configure_module`` returns for a new-style module ``data``."""
    if _BUILT_MODULE is not None:
        return _BUILT_MODULE(
            b_module_data=data, module_style="new", shebang=shebang, serialization_profile=profile or "legacy"
        ), module_path
    return "new", shebang, data, module_path


def configured_parts(configured: Any) -> Tuple[str, Optional[str], bytes, Optional[str], str]:
    """``(module_style, shebang, data, profile, module_path)`` of what ``ActionBase._configure_module`` returned.

    2.19+ returns ``(_BuiltModule, path)``, earlier releases ``(style, shebang, data, path)``;
    ``profile`` is None before 2.19. 2.21 gives a binary module's data as ``b""``,
    its marker for "the file itself, unmodified": then ``data`` is the file's.
    """
    if _BUILT_MODULE is not None:
        built, path = configured
        data = built.b_module_data
        if not data and built.module_style == "binary":
            with open(path, "rb") as fp:
                data = fp.read()
        return built.module_style, built.shebang, data, built.serialization_profile, path
    style, shebang, data, path = configured
    return style, shebang, data, None, path


def is_json_args(source: bytes) -> bool:
    """True if ``source`` holds the marker Ansible replaces with the module's arguments (JSON_ARGS)."""
    return module_common.REPLACER_JSONARGS in source


def args_file_json(module_args: Any, profile: Optional[str]) -> str:
    """The arguments file of a WANT_JSON or binary module, as ``ActionBase._execute_module`` writes it."""
    if profile is not None:
        from ansible.module_utils.common.json import Direction, get_module_encoder

        return json.dumps(module_args, cls=get_module_encoder(profile, Direction.CONTROLLER_TO_MODULE))
    return json.dumps(module_args)


def remote_tmp(action: Any) -> str:
    """The remote temp directory setting of the action's shell (``remote_tmp``)."""
    try:
        return str(action._connection._shell.get_option("remote_tmp"))
    except Exception:
        return "~/.ansible/tmp"


def module_fqn(module_path: str, leaf_name: str) -> str:
    """The import name AnsiballZ would give the module (as ``_module_fqn``)."""
    try:
        fqn = module_common._get_ansible_module_fqn(module_path)
    except ValueError:
        fqn = None
    # as AnsiballZ names library/ modules: ansible.modules.X up to 2.18, ansible.legacy.X from 2.19
    return str(fqn) if fqn else "%s.%s" % ("ansible.legacy" if VERSION >= (2, 19) else "ansible.modules", leaf_name)


def vanilla_discovery(action: Any, mode: str, task_vars: Any) -> Optional[str]:
    """Up to 2.18, the interpreter vanilla's discovery picks; None from 2.19.

    2.16-2.18 look the target's distribution up in a table first (Debian 12 gets
    ``/usr/bin/python3``, not the first of the fallback list), and put their warnings
    in ``action._discovery_warnings``, which the task result carries. From 2.19 the
    fallback list alone decides, as ns.mitogen's own discovery does. Runs ansible's
    ``discover_interpreter`` itself, through the action's (ns.mitogen) connection.
    """
    if VERSION >= (2, 19):
        return None
    from ansible.executor.interpreter_discovery import discover_interpreter

    return str(discover_interpreter(action, "python", mode, task_vars))


_AGENT_KEYS: dict = {}  # (key text, passphrase) -> public key file, per process


def agent_identity(key_data: str, passphrase: Optional[str], host: str) -> str:
    """The public key file of ``key_data`` (a private key's text), once it is in Ansible's ssh-agent.

    As ``ansible.builtin.ssh`` hands ``private_key`` to ssh (2.19+): the key,
    decrypted with ``passphrase``, goes into the agent ansible-core's ``SSH_AGENT``
    setting manages (its socket is ``SSH_AUTH_SOCK`` in the environment ssh
    inherits), and ssh is pointed at its public half (``IdentityFile``, with
    ``IdentitiesOnly``), so that it offers that key alone. Raises ``AnsibleError``
    (SSH_AGENT off, or a release without it) or ``AnsibleAuthenticationFailure``
    (the key or passphrase is refused), as vanilla does.
    """
    import os
    import pathlib
    import tempfile
    import time

    from ansible.errors import AnsibleAuthenticationFailure, AnsibleError
    from ansible.module_utils.common.text.converters import to_bytes

    cached = _AGENT_KEYS.get((key_data, passphrase))
    if cached is not None:
        return str(cached)
    if VERSION < (2, 19):
        raise AnsibleError(
            "ns.mitogen.ssh: private_key needs ansible-core 2.19 or newer (which loads it into the ssh-agent of its "
            "SSH_AGENT setting); with ansible-core %d.%d, use private_key_file (ansible_ssh_private_key_file)" % VERSION
        )
    auth_sock = C.config.get_config_value("SSH_AGENT")
    if auth_sock == "none":
        raise AnsibleError("Cannot utilize private_key with SSH_AGENT disabled")
    try:
        from ansible._internal._ssh import _ssh_agent
        from cryptography.hazmat.primitives import serialization

        private_key, public_key, fingerprint = _ssh_agent.key_data_into_crypto_objects(
            to_bytes(key_data), to_bytes(passphrase) if passphrase else None
        )
        with _ssh_agent.SshAgentClient(auth_sock) as client:
            if public_key not in client:
                client.add(
                    private_key,
                    "[added by ansible: PID=%d, UID=%d, EUID=%d, TIME=%s]"
                    % (os.getpid(), os.getuid(), os.geteuid(), time.time()),
                    C.config.get_config_value("SSH_AGENT_KEY_LIFETIME"),
                )
        path = pathlib.Path(C.DEFAULT_LOCAL_TMP).joinpath(fingerprint.replace("/", "-") + ".pub")
        if not path.exists():
            with tempfile.NamedTemporaryFile(dir=C.DEFAULT_LOCAL_TMP, delete=False) as f:
                f.write(
                    public_key.public_bytes(encoding=serialization.Encoding.OpenSSH, format=serialization.PublicFormat.OpenSSH)
                )
            os.rename(f.name, path)  # atomic; an existing file of the same key is as good
            os.chmod(path, 0o400)
    except Exception as exc:
        raise AnsibleAuthenticationFailure("Failed to add configured private key into ssh-agent.") from exc
    _AGENT_KEYS[(key_data, passphrase)] = str(path)
    return str(path)


#: ansible's fetch action names the source (``file``) in a changed result from 2.20 on
FETCH_REPORTS_FILE = VERSION >= (2, 20)


def fetch_check_mode(action: Any) -> bool:
    """Whether ansible's fetch action skips the task as check mode (2.16 asks the play context)."""
    return bool(action._play_context.check_mode if VERSION < (2, 17) else action._task.check_mode)


def fetch_write_error(exc: OSError) -> Exception:
    """What ansible's fetch action raises when it cannot write the slurped file."""
    from ansible.errors import AnsibleActionFail

    if VERSION < (2, 20):
        return AnsibleActionFail("Failed to fetch the file: %s" % exc)
    return AnsibleActionFail("Failed to fetch the file.")


# -- ansible-core's private API (see the rule at the top) -------------------------------------
def record_discovered_interpreter(action: Any, task_vars: Dict[str, Any], key: str, python: str) -> None:
    """The bookkeeping ``ActionBase._configure_module`` does after ``discover_interpreter()``."""
    action._discovered_interpreter = python
    if not action._task.delegate_to or action._task.delegate_facts:
        task_vars.setdefault("ansible_facts", {})[key] = python
        action._discovered_interpreter_key = key
    else:
        delegated = task_vars.get("ansible_delegated_vars", {}).get(action._task.delegate_to, {})
        delegated.setdefault("ansible_facts", {})[key] = python


def replace_discovery_warnings(action: Any, warnings: List[str]) -> None:
    """Make ``warnings`` the discovery warnings the task result carries (``_discovery_warnings``)."""
    action._discovery_warnings[:] = warnings


def task_environment(action: Any) -> Dict[str, Any]:
    """The task's ``environment:`` as the action would apply it to a module (``_compute_environment_string``)."""
    env: Dict[str, Any] = {}
    action._compute_environment_string(env)
    return env


def is_new_style_python(source: bytes) -> bool:
    """True for a new-style (AnsibleModule) Python module's ``source``, as ``module_common`` tells them."""
    if module_common.REPLACER_JSONARGS in source or b"WANT_JSON" in source:
        return False
    return bool(module_common.NEW_STYLE_PYTHON_MODULE_RE.search(source)) and module_common.REPLACER not in source


def module_utils_paths() -> List[str]:
    """The module_utils search path (builtin, configured, playbook's and roles'), without subdirectories."""
    from ansible.plugins.loader import module_utils_loader

    return [str(p) for p in module_utils_loader._get_paths(subdirs=False)]


def builtin_module_utils_dir() -> str:
    """ansible-core's own ``module_utils`` directory."""
    return str(module_common._MODULE_UTILS_PATH)


def plugin_load_name(plugin: Any) -> str:
    """The name a plugin was loaded by (``ns.mitogen.ssh``), as its config definitions are keyed."""
    return str(plugin._load_name)


def ini_option_value(plugin: Any, name: str, cfile: str) -> Any:
    """The raw text of ``plugin``'s option ``name`` in the config file ``cfile``.

    None where the file does not set it; True where it cannot be told (then
    Ansible's own parsing stands).
    """

    definition = C.config.get_configuration_definitions(plugin.plugin_type, plugin._load_name)[name]
    reader = getattr(C.config, "_get_ini_config_value", None)
    for entry in definition.get("ini") or ():
        try:
            if reader is not None:
                value = reader(cfile, entry.get("section", "defaults"), entry["key"])
            else:  # ansible-core 2.16
                from ansible.config.manager import get_ini_config_value

                value = get_ini_config_value(C.config._parsers[cfile], entry)
        except Exception:
            return True  # cannot tell: Ansible's own parsing stands
        if value is not None:
            return value
    return True


def play_of(iterator: Any) -> Any:
    """The play a strategy's ``PlayIterator`` runs."""
    return iterator._play


def peek_next_task(iterator: Any, host: Any) -> Any:
    """The task ``host`` runs after the one just queued, without advancing the iterator (or None).

    ``PlayIterator.get_next_task_for_host(host, peek=True)`` (2.16-2.21): works on a
    copy of the host's state, as the linear strategy's own lockstep does.
    """
    _state, task = iterator.get_next_task_for_host(host, peek=True)
    return task


def hostvars_loader(hostvars: Any) -> Any:
    """The DataLoader of the ``hostvars`` of a task's variables (to template another host's variables)."""
    return getattr(hostvars, "_loader", None)


def _omitted() -> Tuple[Type[BaseException], ...]:
    try:  # ansible-core 2.19+: templating a value that is ``omit`` raises
        from ansible.errors import AnsibleValueOmittedError

        return (AnsibleValueOmittedError,)
    except ImportError:
        return ()


#: What templating an omitted value raises (nothing before 2.19): the variable is then unset.
OMITTED: Tuple[Type[BaseException], ...] = _omitted()
