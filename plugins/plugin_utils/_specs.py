# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A task's options as the stack of hop specs that names its interpreter (private).

Owns: ``StackSpecs``, the part of ``_connection.MitogenConnectionBase`` that turns the
task's connection options into specs (plain dicts, see the core's ``_transports``):
the interpreter setting (named, shell syntax, or discovered), the login spec (each
plugin's ``_login_spec``), the hops of ``mitogen_via`` before it (``_via``), the become
hop (a native transport, else the plugin's own logic: ``_become_any``) when Ansible's
own rule says to become, and what the multiplexer needs to apply the interpreter limit.
The original product's names that have no effect here are warned about (or refused)
once per task, before the first stack is built. No I/O: the connection sends the
stacks to the multiplexer.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, cast

import ansible.constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _options, _patterns

if TYPE_CHECKING:
    from ansible_collections.ns.mitogen.plugins.plugin_utils import _become, _become_any, _original, _via
else:  # a task without become, mitogen_via or the original's names does not load them (``plugin_utils.lazy``)
    _become = plugin_utils.lazy("_become")
    _become_any = plugin_utils.lazy("_become_any")
    _original = plugin_utils.lazy("_original")
    _via = plugin_utils.lazy("_via")

#: What every variable of the original product's that is an option of ours starts
#: with, and the original's environment variables: ``_original``'s, which a unit test
#: keeps these equal to (``_check_original_names`` loads it only where one is set).
ORIGINAL_OPTION_PREFIX = "mitogen_"
ORIGINAL_ENVIRONMENT = (
    "MITOGEN_POOL_SIZE",
    "MITOGEN_MAX_INTERPRETERS",
    "MITOGEN_CPU_COUNT",
    "MITOGEN_PROFILING",
    "MITOGEN_ROUTER_DEBUG",
    "MITOGEN_DUMP_THREAD_STACKS",
    "MITOGEN_LOG_LEVEL",
    "MITOGEN_SAVE_PIDS",
)

display = Display()


class ViaSource:
    """Where ``mitogen_via`` intermediaries' variables come from: the task's variables (with ``hostvars``).

    Here, not in ``_via``: every task keeps one, most never follow a ``mitogen_via``.
    """

    __slots__ = ("variables",)

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables

    @property
    def hostvars(self) -> Any:
        return self.variables.get("hostvars")


def from_task_vars(variables: Mapping[str, Any]) -> Tuple[ViaSource, Optional[str]]:
    """(The source of a task's ``update_vars`` variables, its delegated host's name or None).

    A delegated task's variables hold its one delegated host's (where ansible-core names
    the task's own host as ``inventory_hostname``): those are the connection's.
    """
    delegated = variables.get("ansible_delegated_vars") or {}
    name = str(next(iter(delegated))) if len(delegated) == 1 else None
    own = delegated.get(name) if name else None
    return ViaSource(dict(own, hostvars=variables["hostvars"]) if own else variables), name


# An interpreter setting only a shell can run: operators, expansions, a leading VAR=value.
# The characters are looked for without a regex: a setting without "=" (most:
# ``/usr/bin/python3``) then compiles none in the worker, which runs this every task.
_SHELL_CHARACTERS = frozenset(";&|<>()`$\n")
_SHELL_ASSIGNMENT = _patterns.LazyPattern(r"^\s*[A-Za-z_][A-Za-z0-9_]*=")


def shell_syntax(setting: str) -> bool:
    """True if the interpreter setting ``setting`` needs a shell to run it (see ``StackSpecs._python``)."""
    return not _SHELL_CHARACTERS.isdisjoint(setting) or ("=" in setting and _SHELL_ASSIGNMENT.search(setting) is not None)


class StackSpecs:
    """Options -> specs; mixed into the connection base, whose state it reads."""

    method: str  # the plugin's (ns.mitogen.<method>)
    # the connection's state (set in MitogenConnectionBase.__init__ and set_options)
    _play_context: Any
    _real_become: Any
    _original_checked: bool
    _via_source: Optional[ViaSource]
    _via_chain: List[str]
    _via_hops: Optional[List[Dict[str, Any]]]
    _via_names: List[str]
    _delegated_name: Optional[str]

    if TYPE_CHECKING:  # the connection's own (ConnectionBase's): never shadowed at run time

        def get_option(self, option: str, hostvars: Any = None) -> Any: ...

        def has_option(self, option: str) -> bool: ...

        def host_name(self) -> str: ...

    def _interpreter_setting(self) -> str:
        """``ansible_python_interpreter``, else ansible-core's INTERPRETER_PYTHON (``auto``)."""
        value = self.get_option("python_interpreter") or C.config.get_config_value("INTERPRETER_PYTHON")
        return str(value or "auto")

    def _python(self) -> Any:
        """The interpreter's argv when one is named, None when it is discovered.

        A setting with shell syntax (``. /opt/venv/bin/activate && python``,
        ``FOO=1 python3``, ``$HOME/bin/python``) is run by the shell, as vanilla's
        pipelining runs it (``ansible_shell_executable``, ``/bin/sh`` by default); its
        arguments (``-c <first stage>``) follow as ``"$@"``. Quoted words (a quoted
        path with spaces) and a single word run directly; unquoted words with spaces
        are one path where that file exists, else words.
        """
        setting = self._interpreter_setting()
        if setting.startswith("auto"):
            return None
        if shell_syntax(setting):
            shell = str(getattr(self._play_context, "executable", None) or C.DEFAULT_EXECUTABLE or "/bin/sh")
            return [shell, "-c", '%s "$@"' % setting, os.path.basename(shell)]
        words = _options.split_words(setting)
        if len(words) > 1 and "'" not in setting and '"' not in setting and "\\" not in setting:
            # ansible-core 2.17+ takes the whole setting as one path (spaces and all), 2.16
            # as words (``/usr/bin/env FOO=1 python3``): the target's shell tells which.
            return ["/bin/sh", "-c", '[ -x "$0" ] && exec "$0" "$@"; exec %s "$@"' % setting, setting]
        return words

    def discovery_mode(self) -> Optional[str]:
        """``auto``, ``auto_silent``, ... when the interpreter is discovered, else None."""
        setting = self._interpreter_setting()
        return setting if setting.startswith("auto") else None

    def _with_python(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """``spec`` naming the login interpreter, or the candidates to discover it from."""
        spec["python_min"] = _compat.TARGET_PYTHON_MIN
        python = self._python()
        if python:
            spec["python"] = python
        else:
            candidates = self.get_option("interpreter_python_fallback")
            if not candidates:
                candidates = C.config.get_config_value("INTERPRETER_PYTHON_FALLBACK")
            spec["python_candidates"] = [str(c) for c in candidates or ()]
        return spec

    def _login_spec(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _become_spec(self) -> Dict[str, Any]:
        """The become hop: a native transport's spec, else the plugin's own logic (``_become_any``)."""
        spec = _become.native_spec(self._real_become, self._timeout())
        if spec is None:
            shell = str(getattr(self._play_context, "executable", None) or C.DEFAULT_EXECUTABLE or "/bin/sh")
            spec = _become_any.plugin_spec(self._real_become, self._timeout(), shell)
        spec["python_min"] = _compat.TARGET_PYTHON_MIN
        python = self._python()
        if python:
            spec["python"] = python
        return spec

    def _timeout(self) -> int:
        try:
            return int(self.get_option("timeout"))
        except (KeyError, TypeError, ValueError):
            return 30

    def _becomes(self, sudoable: bool) -> bool:
        """Ansible's own rule (ActionBase._low_level_execute_command) for using become."""
        if not sudoable or self._real_become is None:
            return False
        ruser = self._remote_user()
        buser = self._real_become.get_option("become_user")
        return bool(C.BECOME_ALLOW_SAME_USER or buser != ruser or not any((ruser, buser)))

    def _remote_user(self) -> Optional[str]:
        return None

    def _check_original_names(self) -> None:
        """Warn about the original Mitogen's names that have no effect here (refuse a ``REFUSE`` one);
        silent about those this connection reads (``_original.READ_BY``).

        Once per task (this object); the warnings read the same for every host, so
        Ansible's display shows each once per run. Where none of the options and
        environment variables such a name could be is set (most runs), there is nothing to
        say and ``_original`` is not loaded: under a built-in strategy every task's
        worker would load it afresh.
        """
        self._original_checked = True
        options = getattr(self, "_options", None) or {}  # what set_options() gave get_option()
        if not any(
            name.startswith(ORIGINAL_OPTION_PREFIX) and value is not None and value != "" for name, value in options.items()
        ) and not any(os.environ.get(name) for name in ORIGINAL_ENVIRONMENT):
            return
        own = _original.READ_BY.get("ns.mitogen.%s" % self.method, ())
        values = {name: self.get_option(name) for name in _original.VARIABLES if name not in own and self.has_option(name)}
        try:
            _original.check(values, values, display.warning)
        except _original.RefusedName as exc:
            raise AnsibleConnectionFailure(str(exc)) from None
        _original.check_environment(display.warning)

    def _login_stack(self) -> List[Dict[str, Any]]:
        """The hops to the target's login interpreter (the last one's): ``mitogen_via``'s, then the connection's own."""
        return self._via_stack() + [self._login_spec()]

    def _via_stack(self) -> List[Dict[str, Any]]:
        """The hops that reach this host's intermediary (``mitogen_via``), [] without one; once per task."""
        if self._via_hops is None:
            value = self.get_option("mitogen_via") if self.has_option("mitogen_via") else None
            if value is None or value == "":
                self._via_hops, self._via_names = [], []
                return self._via_hops
            chain = self._via_chain or [self._inventory_name()]
            self._via_hops, names = _via.stack(cast(Any, self), value, self._via_source, chain)
            self._via_names = names
            if not self._via_chain:  # the task's own target: the chain it takes, once per task
                display.vvv("ns.mitogen: mitogen_via chain %s -> %s" % (" -> ".join(names), chain[0]), host=self.host_name())
        return self._via_hops

    def _inventory_name(self) -> str:
        """This host's inventory name (the delegated host's for a delegated task), else its address."""
        if self._delegated_name:
            return self._delegated_name
        variables = self._via_source.variables if self._via_source is not None else {}
        return str(variables.get("inventory_hostname") or self.host_name())

    def _recycling(self) -> Dict[str, int]:
        """What the mux needs to apply the interpreter limit (``_recycler``) when it starts one."""
        limit = self.get_option("max_interpreters") if self.has_option("max_interpreters") else None
        pool = self.get_option("pool_size") if self.has_option("pool_size") else None
        login_hops = len(self._via_stack()) + 1  # len(self._login_stack()), without making the login's spec again
        return {"login_hops": login_hops, "max_interpreters": int(limit or 20), "pool_size": int(pool or 16)}

    def _stack(self, sudoable: bool) -> List[Dict[str, Any]]:
        if not self._original_checked:
            self._check_original_names()
        stack = self._login_stack()
        if self._becomes(sudoable):
            stack.append(self._become_spec())
        return stack
