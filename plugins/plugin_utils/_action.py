# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seams in Ansible's actions: module runs on ns.mitogen connections (private).

Owns: ``install()``, which routes ``ActionBase._configure_module`` through
``configure_module`` and ``ActionBase._execute_module`` through ``execute_module``
(async tasks), runs ``ns.mitogen.fetch`` for ansible's own fetch action on our
connections (``fetch_action``), gives copy and template their one round trip
(``_speculation``, hooked as a worker picks such an action: ``choose_action``), and lets our connections pipeline under every become plugin
(ansible-core before 2.19 refuses it under ``su``; the patches themselves are
``_compat``'s), answers a task's temporary directory without round trips of its
own (``_tmpdirs``), and reporting the
interpreter that discovery picked as ``ActionBase`` reports its own
(``report_discovery``). For an ns.mitogen connection, a new-style Python module is
planned for the in-process runner (``_planner``) and the action gets a marker in
place of the module's AnsiballZ payload; everything else, and every other
connection, gets Ansible's own ``_configure_module``.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable

from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _compat_hooks, _fetch, _planner
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase

display = Display()


def install() -> None:
    """Route ``ActionBase._configure_module`` through ``configure_module``, and let
    ns.mitogen connections pipeline under every become plugin (both idempotent)."""
    _compat_hooks.install_configure_module_hook(configure_module)
    _compat_hooks.install_execute_module_hook(execute_module)
    _compat_hooks.install_pipelining_hook(lambda connection: isinstance(connection, MitogenConnectionBase))
    _compat_hooks.install_tmp_hooks(task_files)
    _compat_hooks.install_action_choice(choose_action)


def choose_action(handler: Any, task_vars: Any) -> Any:
    """In a worker, the action plugin for a task on an ns.mitogen connection: ``fetch_action``'s;
    and a copy or template action gets copy's one round trip (``_speculation``) installed."""
    if isinstance(getattr(handler, "_connection", None), MitogenConnectionBase):
        copy_class = _compat_hooks.copy_action_class(handler)
        if copy_class is not None:  # loaded only in a task that copies
            _compat_hooks.install_copy_file_hook(copy_class, plugin_utils.load("_speculation").copy_file)
    return fetch_action(handler, task_vars)


def fetch_action(handler: Any, task_vars: Any) -> Any:
    """In a worker: ``ns.mitogen.fetch`` for a task ansible-core's own fetch action would run
    on an ns.mitogen connection (``fetch``, ``ansible.builtin.fetch``, ``ansible.legacy.fetch``
    alike: one class), unless the host opts out (``mitogen_disable``); else None.

    Under any strategy: the connection plugin, once loaded, installs this
    (``install``) before the worker picks the task's action. A fetch action of the
    user's own (another file) stays theirs.
    """
    if not isinstance(getattr(handler, "_connection", None), MitogenConnectionBase):
        return None
    if not _fetch.is_builtin_fetch_action(type(handler)):
        return None
    if str(task_vars.get("mitogen_disable", False)).lower() in ("1", "true", "yes", "on"):
        return None
    return _compat_hooks.action_like(handler, "ns.mitogen.fetch")


def task_files(action: Any, make: bool = True) -> Any:
    """The task's temporary files on an ns.mitogen connection (``_tmpdirs``), else None;
    also None where the task has none yet, unless ``make``."""
    connection = getattr(action, "_connection", None)
    if not isinstance(connection, MitogenConnectionBase):
        return None
    return connection.task_files if make else connection.task_files_made()


def configure_module(
    action: Any, original: Callable[..., Any], module_name: str, module_args: Any, task_vars: Any = None, **kwargs: Any
) -> Any:
    """For ns.mitogen connections, plan new-style Python modules for the in-process runner.

    Everything else (and every other connection) gets Ansible's own ``_configure_module``.
    """
    connection = getattr(action, "_connection", None)
    if isinstance(connection, MitogenConnectionBase):
        plan = _planner.plan(action, module_name, module_args, display.warning)
        if plan is not None:
            if not connection.capturing():  # a copy's probe (``_speculation``): the real run reported it
                report_discovery(connection, action, task_vars)
            return _compat.configure_module_result(plan.marker(), connection.shebang(), plan.request["profile"], plan.module_path)
        if _planner.may_run_program(action):
            configured = original(action, module_name=module_name, module_args=module_args, task_vars=task_vars, **kwargs)
            plan = _planner.plan_program(action, module_name, module_args, configured)
            if plan is None:
                return configured
            _style, shebang, _data, profile, path = _compat.configured_parts(configured)
            return _compat.configure_module_result(plan.marker(), shebang or connection.shebang(), profile, path)
    return original(action, module_name=module_name, module_args=module_args, task_vars=task_vars, **kwargs)


def execute_module(action: Any, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Start an async task's module as an async job in the target's zygote, for ns.mitogen connections.

    Where the in-process runner can run the module (``_planner.in_process``), ansible's
    own ``_execute_module`` runs without ``wrap_async`` (no ``async_wrapper``, no temp
    files: the planner makes the request an async job, whose reply is
    ``async_wrapper``'s start), and the result is marked changed as ansible marks an
    async start. Anything else, and every other connection, goes ansible's own way.
    """
    wrap_async = kwargs.get("wrap_async")
    connection = getattr(action, "_connection", None)
    if not wrap_async or not isinstance(connection, MitogenConnectionBase):
        return original(action, *args, **kwargs)
    module_name = kwargs.get("module_name", args[0] if args else None) or action._task.action
    if _planner.in_process(action, module_name) is None:
        return original(action, *args, **kwargs)
    setattr(action, _planner.ASYNC_ATTR, action._task.async_val)
    try:
        result = original(action, *args, **dict(kwargs, wrap_async=False))
    finally:
        delattr(action, _planner.ASYNC_ATTR)
    result["changed"] = True  # as ansible's own async start (its "backwards compat" line)
    return result


def report_discovery(connection: MitogenConnectionBase, action: Any, task_vars: Any) -> None:
    """Interpreter discovery's outcome, as ActionBase reports its own.

    The interpreter was discovered when it started; this only asks the mux which
    one it is (once per host: afterwards the fact is in ``task_vars``).
    """
    mode = connection.discovery_mode()
    if mode is None or not isinstance(task_vars, dict):
        return
    key = "discovered_interpreter_python"
    if (task_vars.get("ansible_facts") or {}).get(key):
        return
    host = task_vars.get("inventory_hostname", connection.host_name())
    python = str(connection.login_hello().get("executable") or "")
    if not python:
        return
    vanilla = _compat.vanilla_discovery(action, mode, task_vars)
    if vanilla is not None:
        python = _as_vanilla_names(connection, action, vanilla, python, host)
    _compat.record_discovered_interpreter(action, task_vars, key, python)
    if not mode.endswith("_silent") and vanilla is None:
        display.warning(
            "Host %r is using the discovered Python interpreter at %r, but future installation of "
            "another Python interpreter could cause a different interpreter to be discovered." % (host, python)
        )


def _as_vanilla_names(connection: MitogenConnectionBase, action: Any, vanilla: str, running: str, host: str) -> str:
    """``vanilla`` (the path ansible-core <= 2.18 discovered) if it is the interpreter running, else ``running``.

    Then vanilla's warnings (``_compat.replace_discovery_warnings``) stand; else they
    describe an interpreter that does not run the modules, and one warning says so.
    """
    cmd = "readlink -f -- %s %s" % (shlex.quote(vanilla), shlex.quote(running))
    rc, out, _err = connection.exec_command(cmd, sudoable=False)
    paths = out.decode("utf-8", "replace").split()
    if rc == 0 and len(paths) == 2 and paths[0] == paths[1]:
        return vanilla
    _compat.replace_discovery_warnings(
        action,
        [
            "ns.mitogen runs %s on host %s, the first interpreter of the fallback list that runs Python %s or "
            "newer; ansible-core's own discovery would have used %s" % (running, host, _compat.TARGET_PYTHON_MIN, vanilla)
        ],
    )
    return running
