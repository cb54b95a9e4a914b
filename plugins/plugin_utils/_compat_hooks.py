# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ns.mitogen patches or extends ansible-core's classes (private; ``_compat``'s rule).

Owns: the hooks on ``ActionBase`` (``_configure_module``, ``_execute_module``, the
temporary directory's three methods, ``_is_pipelining_enabled`` before 2.19), on the
copy action (``_copy_file``, and running it against a faked remote: ``copy_probe``), on
``TaskExecutor`` (the connection a worker loads: ``connection_choice``; the action
plugin it picks: ``install_action_choice``) and ``TaskVariablesHook`` (a connection
base that sees the task's variables). Each hook is installed once (idempotent), keeps
ansible-core's own method for every case it does not take, and is the same on 2.16 ...
2.21 unless its docstring says otherwise. Like ``_compat``, the one other module
allowed ansible-core's private API (``tests/unit/test_boundaries.py``); split from it
to keep each under ~500 lines.
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Any, Callable, Dict, Iterator, Optional

import ansible.constants as C

from ansible_collections.ns.mitogen.plugins.plugin_utils._compat import VERSION


def install_configure_module_hook(hook: Callable[..., Any]) -> None:
    """Route ``ActionBase._configure_module`` through ``hook`` (idempotent).

    ``hook(action, original, module_name, module_args, task_vars, **kwargs)`` gets
    ansible's own method as ``original`` (unbound: ``original(action, ...)``).
    """
    from ansible.plugins.action import ActionBase

    if getattr(ActionBase._configure_module, "_ns_mitogen_hook", None) is not None:
        return
    original = ActionBase._configure_module

    def _configure_module(self: Any, module_name: str, module_args: Any, task_vars: Any = None, **kwargs: Any) -> Any:
        return hook(self, original, module_name, module_args, task_vars, **kwargs)

    _configure_module._ns_mitogen_hook = hook  # type: ignore[attr-defined]
    ActionBase._configure_module = _configure_module  # type: ignore[method-assign]


def install_execute_module_hook(hook: Callable[..., Any]) -> None:
    """Route ``ActionBase._execute_module`` through ``hook`` (idempotent).

    ``hook(action, original, *args, **kwargs)`` gets ansible's own method as
    ``original`` (unbound), and the arguments as the caller gave them; its
    ``wrap_async`` (the seventh positional parameter on every supported version)
    is passed on as a keyword.
    """
    from ansible.plugins.action import ActionBase

    if getattr(ActionBase._execute_module, "_ns_mitogen_hook", None) is not None:
        return
    original = ActionBase._execute_module

    def _execute_module(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) > 6:
            kwargs["wrap_async"] = args[6]
            args = args[:6]
        return hook(self, original, *args, **kwargs)

    _execute_module._ns_mitogen_hook = hook  # type: ignore[attr-defined]
    ActionBase._execute_module = _execute_module  # type: ignore[method-assign]


def install_tmp_hooks(files_of: Callable[[Any, bool], Any]) -> None:
    """Route ``ActionBase._make_tmp_path``, ``_remote_chmod`` and ``_remove_tmp_path`` to
    ``files_of(action, make)`` (a ``_tmpdirs.TaskFiles``, or None: ansible's own), idempotent.
    ``make`` is false for a chmod or removal, which only a task's directory made before
    concerns (None then where the task made none, as most tasks: ansible's own, as it
    would be for a path no ``TaskFiles`` owns).

    Ansible's own code runs where ours would differ: ``keep_remote_files``, a Windows
    shell, a become user that is not privileged (``_is_become_unprivileged``), a
    ``remote_tmp`` that ``TaskFiles.tmp_path`` declines, paths that are not the task's.
    Every supported release (2.16 ... 2.21) has these three methods and attributes alike.
    """
    from ansible.plugins.action import ActionBase

    if getattr(ActionBase._make_tmp_path, "_ns_mitogen_hook", None) is not None:
        return
    make, chmod, remove = ActionBase._make_tmp_path, ActionBase._remote_chmod, ActionBase._remove_tmp_path

    def _make_tmp_path(self: Any, remote_user: Optional[str] = None) -> str:
        files = files_of(self, True)
        shell = self._connection._shell
        if (
            files is not None
            and not C.DEFAULT_KEEP_REMOTE_FILES
            and not getattr(shell, "_IS_WINDOWS", False)
            and not self._is_become_unprivileged()
        ):
            path = files.tmp_path(self.get_shell_option("remote_tmp", default="~/.ansible/tmp"), shell._generate_temp_dir_name())
            if path:
                self._cleanup_remote_tmp = True
                shell.tmpdir = path
                return str(path)
        return str(make(self, remote_user))

    def _remote_chmod(self: Any, paths: Any, mode: Any, sudoable: bool = False) -> Any:
        files = files_of(self, False)
        if files is not None and files.chmod(list(paths), mode):
            return {"rc": 0, "stdout": "", "stdout_lines": [], "stderr": "", "stderr_lines": []}
        return chmod(self, paths, mode, sudoable)

    def _remove_tmp_path(self: Any, tmp_path: Any, force: bool = False) -> None:
        files = files_of(self, False)
        if tmp_path is None and self._connection._shell.tmpdir:
            tmp_path = self._connection._shell.tmpdir
        if files is None or not isinstance(tmp_path, str) or tmp_path not in files.owner:
            return remove(self, tmp_path, force)  # type: ignore[no-any-return]
        if force or self._should_remove_tmp_path(tmp_path):
            files.remove(tmp_path)
            self._connection._shell.tmpdir = None
        return None

    _make_tmp_path._ns_mitogen_hook = files_of  # type: ignore[attr-defined]
    ActionBase._make_tmp_path = _make_tmp_path  # type: ignore[method-assign]
    ActionBase._remote_chmod = _remote_chmod  # type: ignore[method-assign]
    ActionBase._remove_tmp_path = _remove_tmp_path  # type: ignore[method-assign]


COPY_ACTION_FILE = os.sep + os.path.join("ansible", "plugins", "action", "copy.py")
TEMPLATE_ACTION_FILE = os.sep + os.path.join("ansible", "plugins", "action", "template.py")


def copy_action_class(handler: Any) -> Any:
    """The copy action class whose ``_copy_file`` a task of ``handler`` runs, not hooked yet; else None.

    ansible-core's own copy or template action only. The action loader may load
    ``copy.py`` as more than one module object (``ansible.builtin.copy`` as
    ``ansible_collections.ansible.builtin...``, template's ``ansible.legacy.copy`` as
    ``ansible.plugins.action.copy``): the class is the handler's own, or for a template
    the one its loader gives for ``ansible.legacy.copy``, which its ``run`` gets.
    """
    cls = type(handler)
    if _defined_in(cls, TEMPLATE_ACTION_FILE):
        cls = handler._shared_loader_obj.action_loader.get("ansible.legacy.copy", class_only=True)
    if cls is None or not _defined_in(cls, COPY_ACTION_FILE) or "_copy_file" not in vars(cls) or is_copy_action_class(cls):
        return None
    return cls


def install_copy_file_hook(cls: Any, hook: Callable[..., Any]) -> None:
    """Route ``cls._copy_file`` (a ``copy_action_class``) through ``hook`` (idempotent).

    ``hook(action, original, *args, **kwargs)`` gets ansible's own method as
    ``original`` (unbound). Its signature is the same on 2.16 ... 2.21:
    ``(source_full, source_rel, content, content_tempfile, dest, task_vars, follow)``.
    """
    if is_copy_action_class(cls):
        return
    original = cls._copy_file

    def _copy_file(self: Any, *args: Any, **kwargs: Any) -> Any:
        return hook(self, original, *args, **kwargs)

    _copy_file._ns_mitogen_hook = hook  # type: ignore[attr-defined]
    cls._copy_file = _copy_file


def _defined_in(cls: Any, filename: str) -> bool:
    code = getattr(vars(cls).get("run"), "__code__", None)
    return code is not None and str(code.co_filename).endswith(filename)


def is_copy_action_class(cls: Any) -> bool:
    """True for ansible-core's own copy action with the hook installed (template's runs it), not a subclass."""
    return getattr(vars(cls).get("_copy_file"), "_ns_mitogen_hook", None) is not None


def copy_diff(action: Any) -> bool:
    """Whether copy's ``_copy_file`` computes a diff (2.16 asks the play context, 2.17+ the task)."""
    if VERSION < (2, 17):
        return bool(action._play_context.diff)
    return bool(action._task.diff)


def copy_probe(action: Any, original: Callable[..., Any], stat: Dict[str, Any], restat: Callable[[], None]) -> Callable[..., Any]:
    """``original`` (copy's ``_copy_file``) bound to a shallow copy of ``action`` whose remote
    stat answers ``stat`` (as ``_execute_remote_stat`` returns it) and which leaves
    ``content``'s local temporary file in place; a second stat calls ``restat()`` first.

    What the copy sends meanwhile goes to its connection (the caller captures it).
    """
    probe = copy.copy(action)
    asked = []

    def _execute_remote_stat(path: Any, all_vars: Any, follow: Any, tmp: Any = None, checksum: bool = True) -> Dict[str, Any]:
        asked.append(path)
        if len(asked) > 1:
            restat()
        return dict(stat)

    probe._execute_remote_stat = _execute_remote_stat
    probe._remove_tempfile_if_content_defined = lambda content, content_tempfile: None
    return lambda *args, **kwargs: original(probe, *args, **kwargs)


def install_pipelining_hook(ours: Callable[[Any], bool]) -> None:
    """Let a connection ``ours`` says is ns.mitogen pipeline under every become plugin (idempotent).

    Before 2.19, ``ActionBase._is_pipelining_enabled`` refuses pipelining when the
    become plugin is named ``su``, whatever the connection; Ansible then writes the
    module to a temp file and fails to share it with an unprivileged su user. Ours
    never runs su per command (the su interpreter was started once), so the rest of
    ansible's own conditions decide. 2.19 asks the connection
    (``is_pipelining_enabled``), and the become proxy's ``pipelining`` answers.
    """
    if VERSION >= (2, 19):
        return
    import ansible.constants as C
    from ansible.plugins.action import ActionBase

    if getattr(ActionBase._is_pipelining_enabled, "_ns_mitogen_hook", False):
        return
    original = ActionBase._is_pipelining_enabled

    def _is_pipelining_enabled(self: Any, module_style: str, wrap_async: bool = False) -> bool:
        connection = self._connection
        if not ours(connection):
            return bool(original(self, module_style, wrap_async))
        always = connection.always_pipeline_modules
        return bool(
            connection.has_pipelining and module_style == "new" and not C.DEFAULT_KEEP_REMOTE_FILES and (not wrap_async or always)
        )

    _is_pipelining_enabled._ns_mitogen_hook = True  # type: ignore[attr-defined]
    ActionBase._is_pipelining_enabled = _is_pipelining_enabled  # type: ignore[method-assign]


@contextlib.contextmanager
def connection_choice(choose: Callable[[Dict[str, Any], Any, Any], Any]) -> Iterator[None]:
    """Meanwhile (and in the workers forked meanwhile), ``TaskExecutor._get_connection``
    loads the connection ``choose(cvars, templar, name)`` gives for the one it was asked for.

    ``cvars``: the variables of the host the connection is for (the delegated host's
    for a delegated task, known only in the worker).
    """
    from ansible.executor.task_executor import TaskExecutor

    original = TaskExecutor._get_connection

    def _get_connection(self: Any, cvars: Any, templar: Any, current_connection: Any) -> Any:
        return original(self, cvars, templar, choose(cvars, templar, current_connection))

    TaskExecutor._get_connection = _get_connection  # type: ignore[method-assign]
    try:
        yield
    finally:
        TaskExecutor._get_connection = original  # type: ignore[method-assign]


def install_action_choice(choose: Callable[[Any, Dict[str, Any]], Any]) -> None:
    """Let ``choose(handler, job_vars)`` replace the action plugin a worker picked for a task (idempotent).

    ``TaskExecutor._get_action_handler_with_module_context`` (2.16 ... 2.21 alike)
    picks the task's action plugin once its connection is known (``handler._connection``);
    ``choose`` returns another action plugin, or None to keep it. Installed in the
    main process before workers fork, it holds in each of them.
    """
    from ansible.executor.task_executor import TaskExecutor

    original = TaskExecutor._get_action_handler_with_module_context
    if getattr(original, "_ns_mitogen_hook", None) is not None:
        return

    def _get_action_handler_with_module_context(self: Any, templar: Any) -> Any:
        handler, module = original(self, templar)
        return choose(handler, _executor_vars(self)) or handler, module

    _get_action_handler_with_module_context._ns_mitogen_hook = choose  # type: ignore[attr-defined]
    TaskExecutor._get_action_handler_with_module_context = _get_action_handler_with_module_context  # type: ignore[method-assign]


def _executor_vars(executor: Any) -> Dict[str, Any]:
    """The variables of the task a worker's ``TaskExecutor`` runs (2.21 keeps them in its ``TaskContext``)."""
    found = getattr(executor, "_job_vars", None)
    if found is None:
        from ansible._internal._task import TaskContext

        found = TaskContext.current().task_vars
    return found if isinstance(found, dict) else {}


def action_like(handler: Any, name: str) -> Any:
    """The action plugin ``name``, made for the task, connection and templar ``handler`` was made for."""
    return handler._shared_loader_obj.action_loader.get(
        name,
        task=handler._task,
        connection=handler._connection,
        play_context=handler._play_context,
        loader=handler._loader,
        templar=handler._templar,
        shared_loader_obj=handler._shared_loader_obj,
    )


class TaskVariablesHook:
    """A connection base that sees the task's variables where ansible-core 2.17+ resolves
    its options from them (``ConnectionBase._resolve_option_variables``, private): they
    go to the class's ``task_variables`` first. 2.16 has no such step (``update_vars``
    then is the only one)."""

    def task_variables(self, variables: Any) -> None:
        raise NotImplementedError

    def _resolve_option_variables(self, variables: Any, templar: Any) -> Any:
        self.task_variables(variables)
        return super()._resolve_option_variables(variables, templar)  # type: ignore[misc]
