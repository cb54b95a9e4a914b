# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every ns.mitogen connection plugin shares (private).

Owns: the ``ConnectionBase`` subclass behind every ns.mitogen connection: taking a
task's options (``_specs`` turns them into a stack of hop specs: login, then become),
asking the
multiplexer for the persistent interpreter of that stack, and running
``exec_command`` / ``put_file`` / ``fetch_file`` there as RPCs. The core's errors
become Ansible's in one place, ``_failures``.

Become: the command runs unwrapped in an interpreter that the become tool started
once (one per become user; ``_become`` has the proxy that keeps Ansible from wrapping
it); sudo natively, any other become plugin through its own logic (``_become_any``,
chosen in ``_become_spec``).
The decision of *when* to become is Ansible's own rule, repeated in
``_becomes()``. ``fetch_file`` called by ansible's own fetch action streams from
the become interpreter (``_fetch`` says why and how). How actions hand modules to
these connections is ``_action``'s.

A task's temporary directory, a small file put there and their chmod go with the
task's next call to the interpreter (``_tmpdirs``); every call, put and fetch is one
round trip, counted per interpreter and reported as the task ends (``_roundtrips``);
a copy's calls meanwhile go through its ``speculation`` (``_speculation``: captured
while it probes, the stat sent with its follow-up, the follow-up's call answered).
Putting and fetching files is ``_transfer``'s, loaded by the first task that does.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import (
    CallError,
    ConnectError,
    InterpreterLost,
    ProtocolError,
    StreamError,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils import (
    _compat,
    _compat_hooks,
    _debug,
    _fetch,
    _mux,
    _mux_client,
    _options,
    _planner,
    _plugin_defs,
    _specs,
)

if TYPE_CHECKING:
    from ansible_collections.ns.mitogen.plugins.plugin_utils import (
        _become,
        _become_any,
        _failures,
        _roundtrips,
        _tmpdirs,
        _transfer,
        _via,
    )
else:  # what a task seldom runs: loaded when first used (``plugin_utils.lazy``)
    _become = plugin_utils.lazy("_become")
    _become_any = plugin_utils.lazy("_become_any")
    _failures = plugin_utils.lazy("_failures")
    _roundtrips = plugin_utils.lazy("_roundtrips")  # at -vvv or with NS_MITOGEN_ROUND_TRIPS
    _tmpdirs = plugin_utils.lazy("_tmpdirs")  # a task's temporary directory or put
    _transfer = plugin_utils.lazy("_transfer")
    _via = plugin_utils.lazy("_via")

#: ``_roundtrips.ENV`` (a unit test keeps them equal): without it, and below -vvv, a
#: task's round trips are counted but not reported, and ``_roundtrips`` is not loaded.
ROUND_TRIPS_ENV = "NS_MITOGEN_ROUND_TRIPS"

display = Display()
LOG = logging.getLogger("ns.mitogen.worker")


def collection_roots() -> List[str]:
    """Directories holding ``ansible_collections`` that this Ansible run searches."""
    try:
        from ansible.utils.collection_loader import AnsibleCollectionConfig

        return [str(p) for p in AnsibleCollectionConfig.collection_paths]
    except Exception:
        return []


# Target functions, by name: the worker never imports the target-side modules.
RUN_MODULE = (_mux.RUNNER, "run_module")
EXEC_COMMAND = (_mux.CORE + "._target", "exec_command")
APPLY_OPS = (_mux.CORE + "._files", "apply_ops")


class MitogenConnectionBase(_specs.StackSpecs, _compat_hooks.TaskVariablesHook, ConnectionBase):
    """Runs each command in a persistent interpreter owned by the run's multiplexer."""

    has_pipelining = True
    method = ""
    login_shell = False  # commands without become run in the login shell, not /bin/sh (as sshd runs them)

    def __init__(self, play_context: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(play_context, *args, **kwargs)
        # In a worker that inherited our plugin (the ns.mitogen.preload callback): see there.
        plugin_utils.spare_inherited_objects()
        _plugin_defs.remember(self)  # Ansible parsed our DOCUMENTATION: once per user is enough
        # Workers are told the playbook's pid; the one caller that is not (the strategy's
        # meta: reset_connection) runs in the playbook process itself.
        self._playbook_pid = int(kwargs.get("ansible_playbook_pid") or os.getpid())
        self._client: Optional[_mux_client.MuxClient] = None
        self._contexts: Dict[str, int] = {}
        self._announced: Set[str] = set()  # stacks whose interpreter -vvv named (once per connection)
        self._real_become: Any = None
        self._original_checked = False
        self._task_keys: Any = None
        # mitogen_via (``_via``): the task's variables, the hosts behind this one (when
        # this is an intermediary), the hops before this host and their names
        self._via_source: Optional[_specs.ViaSource] = None
        self._via_chain: List[str] = []
        self._via_hops: Optional[List[Dict[str, Any]]] = None
        self._via_names: List[str] = []
        self._delegated_name: Optional[str] = None
        self._trips: Dict[str, int] = {}  # round trips to target interpreters this task (``_count_trip``)
        self._asked: Dict[str, int] = {}  # module requests the targets sent across the link meanwhile
        self._sources_sent = 0  # calls this task that carried a module source (the mux attached it)
        self._task_files: "Optional[_tmpdirs.TaskFiles]" = None  # made on first use (``task_files``)
        self.speculation: Any = None  # a copy's one-round-trip speculation meanwhile (``_speculation``)

    # -- options -> specs -------------------------------------------------------------
    def set_options(self, task_keys: Any = None, var_options: Any = None, direct: Any = None) -> None:
        """Ansible's own parsing, then ours (``_options.validate``): a bad value fails here, before any connection."""
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        _options.validate(self, task_keys, var_options, direct)
        self._task_keys = task_keys
        self._via_hops = None

    def task_variables(self, variables: Any) -> None:
        """The task's variables, as ansible-core 2.17+ resolves the connection's options
        (tasks and ``meta: reset_connection``; ``_compat_hooks.TaskVariablesHook``): kept for ``mitogen_via``."""
        if isinstance(variables, dict) and "hostvars" in variables:
            self._via_source = _specs.ViaSource(variables)

    def update_vars(self, variables: Any) -> None:
        """Every release, after ``set_options``: the task's variables, where 2.16 gave none before."""
        if isinstance(variables, dict) and "hostvars" in variables:
            source, self._delegated_name = _specs.from_task_vars(variables)
            self._via_source = self._via_source or source
        super().update_vars(variables)

    def set_become_plugin(self, plugin: Any) -> None:
        self._real_become = plugin
        if plugin is None:  # most tasks: the become side is not loaded
            self.become = None
            return
        _become.check_supported(plugin)
        self.become = _become.BecomeProxy(plugin)

    # -- the multiplexer --------------------------------------------------------------
    @property
    def transport(self) -> str:
        return "ns.mitogen.%s" % self.method

    def _connect(self) -> "MitogenConnectionBase":
        if self._client is None:
            try:
                _debug.start("worker")
                self._client = _mux_client.connect_client(
                    self._playbook_pid, collection_roots, _compat.ansiballz_package_stubs(), self._mux_index()
                )
            except (OSError, ConnectError) as exc:
                raise AnsibleConnectionFailure("ns.mitogen: cannot reach the multiplexer: %s" % exc) from None
            if self._client.started:  # once per run: its module (and ``resource``) loaded only then
                display.vvv(plugin_utils.load("_mux_limits").started_message())
        self._connected = True
        return self

    def _mux_index(self) -> int:
        """Which of the run's muxes serves this host (option ``cpu_count``)."""
        count = self.get_option("cpu_count") if self.has_option("cpu_count") else 1
        return _mux.mux_index(self._inventory_name(), max(1, int(count or 1)))

    def _request(self, method: str, **kwargs: Any) -> Any:
        if self.speculation is not None and method != "connect":
            self.speculation.refuse(method)  # a copy's probe sends nothing (``_speculation``)
        self._connect()
        if self._client is None:  # _connect() either sets it or raises
            raise AnsibleConnectionFailure("ns.mitogen: not connected to the multiplexer")
        send = self._client.call if method == "call" else functools.partial(self._client.request, method)
        try:
            if not _debug.enabled():
                return send(**kwargs)
            what = kwargs.get("ref") or api.redacted(kwargs.get("stack")) or kwargs.get("context_id")
            with _debug.timed(LOG, "%s %s", method, what):
                return send(**kwargs)
        except InterpreterLost as exc:
            self._contexts.clear()  # a later call of this task starts a new interpreter, by its stack
            raise _failures.translate(exc, self.method, self.host_name()) from None
        except (StreamError, CallError, ProtocolError) as exc:
            if isinstance(exc, ConnectError) and self._via_names:  # the failed hop is named by its address; the chain too
                exc.hint = _via.hint(_options.ansible_hint(exc.hint), self._via_names, self._inventory_name())
            raise _failures.translate(exc, self.method, self.host_name()) from None

    def _context(self, sudoable: bool) -> int:
        return self._context_of(self._stack(sudoable))

    def _context_of(self, stack: List[Dict[str, Any]]) -> int:
        key = _mux.stack_key(stack)
        if key not in self._contexts:
            self._announce(stack)
            self._contexts[key] = self._request("connect", stack=stack, **self._recycling())["context_id"]
        return self._contexts[key]

    def _call(self, sudoable: bool, ref: Tuple[str, str], *args: Any, **source: Any) -> Any:
        """Run the function ``ref`` (module, name) names with ``args`` in the task's interpreter.

        Never retried: if the interpreter dies during a call, the step may have had
        effects. The task fails (``_failures.TaskInterpreterLost``), or is unreachable when
        the login itself was lost; the next task gets a new interpreter.
        ``source``: ``source_id``, ``source_path`` and ``module_utils_dirs`` of a module run (``MuxClient.call``).
        """
        stack = self._stack(sudoable)
        key = _mux.stack_key(stack)
        self._send_waiting(key)
        ops = self._task_files.take(key) if self._task_files is not None and self._task_files.pending else []
        if ops and ref == RUN_MODULE:  # the task's files travel with the module run that needs them
            args = (dict(args[0], prelude=ops),) + args[1:]
        elif ops and ref == EXEC_COMMAND:
            args = args + (ops,)
        elif ops:
            self._call_on(stack, APPLY_OPS, (ops,), {})
        return self._call_on(stack, ref, args, source)

    def _call_on(self, stack: List[Dict[str, Any]], ref: Tuple[str, str], args: Tuple[Any, ...], source: Dict[str, Any]) -> Any:
        if self.speculation is not None:  # a copy in one round trip (``_speculation``): captured, sent or answered there
            answered, reply = self.speculation.on_call(self, stack, ref, args, source)
            if answered:
                return reply
        return self.send_call(stack, ref, args, source)

    def send_call(self, stack: List[Dict[str, Any]], ref: Tuple[str, str], args: Tuple[Any, ...], source: Dict[str, Any]) -> Any:
        """One round trip: ``ref`` with ``args`` in the interpreter of ``stack``."""
        self._count_trip(stack)
        context_id = self._contexts.get(_mux.stack_key(stack)) if self._contexts else None
        if context_id is None:
            # One round trip: the mux starts (or finds) the interpreter and relays the call.
            self._announce(stack)
        on_note = functools.partial(self._count_note, stack)
        return self._request(
            "call",
            stack=stack,
            ref=ref,
            args=args,
            context_id=context_id,
            on_note=on_note,
            host=self._inventory_name(),
            **source,
            **self._recycling(),
        )

    def _send_waiting(self, key: Optional[str]) -> None:
        """Send the task's deferred file operations for interpreters other than ``key``'s (``_tmpdirs``)."""
        if self._task_files is None:
            return
        for other in self._task_files.waiting_elsewhere(key):
            self._call_on(self._task_files.stacks[other], APPLY_OPS, (self._task_files.take(other),), {})

    # -- the task's temporary directory (``_tmpdirs``) --------------------------------
    @property
    def task_files(self) -> "_tmpdirs.TaskFiles":
        """The task's temporary directories and what waits to be sent (``_tmpdirs``), made
        when the task first needs one: a command task never loads ``_tmpdirs``."""
        if self._task_files is None:
            self._task_files = _tmpdirs.TaskFiles(self)
        return self._task_files

    def task_files_made(self) -> "Optional[_tmpdirs.TaskFiles]":
        """``task_files`` if the task made it already, else None (then it owns nothing yet)."""
        return self._task_files

    def stack_key(self, stack: List[Dict[str, Any]]) -> str:
        return _mux.stack_key(stack)

    def hello_of(self, stack: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The hello of the interpreter of ``stack``, started if need be (a request to the mux only)."""
        key = _mux.stack_key(stack)
        if key not in self._contexts:
            self._announce(stack)
        reply = self._request("connect", stack=stack, **self._recycling())
        self._contexts[key] = reply["context_id"]
        return dict(reply["hello"])

    def remove_soon(self, stack: List[Dict[str, Any]], paths: List[str]) -> None:
        """Have ``paths`` removed in the interpreter of ``stack`` without waiting for it."""
        context_id = self._contexts.get(_mux.stack_key(stack))
        if context_id is not None:
            self._request("remove_soon", context_id=context_id, paths=paths)

    def capturing(self) -> bool:
        """True while a copy's probe runs (``_speculation``): calls are captured, not sent."""
        return self.speculation is not None and self.speculation.capturing is not None

    def _count_trip(self, stack: List[Dict[str, Any]]) -> None:
        """One request/reply round trip to the interpreter of ``stack`` (a call, a put, a fetch)."""
        key = _describe(stack[-1]) if stack else "?"
        self._trips[key] = self._trips.get(key, 0) + 1

    def _count_note(self, stack: List[Dict[str, Any]], note: Dict[str, Any]) -> None:
        """What the mux saw of a call to ``stack``'s interpreter: the module requests the target
        sent across the link meanwhile, and whether a module source went with it."""
        key = _describe(stack[-1]) if stack else "?"
        self._asked[key] = self._asked.get(key, 0) + int(note.get("asked") or 0)
        self._sources_sent += int(note.get("sources") or 0)

    def _report_trips(self) -> None:
        """End of a task: its round trips per interpreter (``_roundtrips``), then start counting afresh."""
        trips, self._trips = self._trips, {}
        asked, self._asked = self._asked, {}
        sources, self._sources_sent = self._sources_sent, 0
        if trips and (display.verbosity >= 3 or os.environ.get(ROUND_TRIPS_ENV)):
            keys = self._task_keys if isinstance(self._task_keys, dict) else {}
            _roundtrips.report(self.host_name(), str(keys.get("action") or ""), trips, display.vvv, asked, sources)

    def _announce(self, stack: List[Dict[str, Any]]) -> None:
        """At -vvv, name the interpreter of ``stack`` the first time this connection uses it."""
        key = _mux.stack_key(stack)
        if key not in self._announced:
            self._announced.add(key)
            self._say_interpreter(stack)

    def _say_interpreter(self, stack: List[Dict[str, Any]]) -> None:
        display.vvv("ns.mitogen: interpreter for %s" % " -> ".join(_describe(s) for s in stack), host=self.host_name())

    def login_hello(self) -> Dict[str, Any]:
        """The hello of the host's login interpreter (its ``executable``, ...), started if need be."""
        stack = self._login_stack()
        return dict(self._request("connect", stack=stack, login_hops=len(stack))["hello"])

    def _shown(self, cmd: str) -> str:
        """``cmd`` as -vvv shows it: hidden for a ``no_log`` task (it may hold its secrets)."""
        if getattr(self._play_context, "no_log", False):
            return "(command hidden: the task has no_log)"
        return cmd

    def host_name(self) -> str:
        return str(self.get_option("host") if self.has_option("host") else "localhost")

    def get_option(self, option: str, hostvars: Any = None) -> Any:
        if option == "pipelining":
            return True  # modules always travel through our channel, never as files
        return super().get_option(option, hostvars)

    def shebang(self) -> str:
        setting = self._interpreter_setting()
        return "#!" + ("/usr/bin/python3" if setting.startswith("auto") else setting)

    def _run_module(self, request: Dict[str, Any], sudoable: bool, cwd: Optional[str]) -> Tuple[int, bytes, bytes]:
        """Run a planned module in the interpreter; send its source only if asked.

        ``cwd``: where the module starts (the local connection's: the playbook's
        directory, which ActionBase gives it as for commands), else the interpreter's
        start directory.
        """
        host = self.host_name()
        where = "as an async job" if request.get("async") else "in a fork" if request.get("fork") else "in process"
        if not self.capturing():
            display.vvv("ns.mitogen RUN %s %s" % (request["name"], where), host=host)
        if display.verbosity >= 3:
            request = dict(request, log=True)  # the target's own log lines come back too
        request = dict(request)
        if cwd:
            request["cwd"] = cwd
        path = request.pop("source_path", None)  # the mux's, to attach the source where never sent
        dirs = request.pop("module_utils_dirs", None)  # the mux's: playbook/role module_utils it serves first
        try:
            name = request["name"] if request.get("style") is None else None  # in process: the mux sends its imports ahead
            reply = self._call(
                sudoable,
                RUN_MODULE,
                request,
                source_id=request["source_id"],
                source_path=path,
                module_utils_dirs=dirs,
                module_name=name,
            )
        except _failures.InterpreterNotFound as exc:
            return 127, b"", to_bytes(exc.output)
        except _failures.TaskInterpreterLost as exc:  # Ansible words the module failure, with this rc and stderr
            return exc.as_result()
        if reply.get("need_source"):
            request = dict(request, source=_planner.source_for(request["source_id"]))
            reply = self._call(sudoable, RUN_MODULE, request, source_id=request["source_id"], source_path=None)
        for line in reply.get("log") or ():
            display.vvv("ns.mitogen target: %s" % line, host=host)
        if reply.get("retire"):
            self._retire(sudoable, str(reply["retire"]))
        return reply["rc"], reply["stdout"], reply["stderr"]

    def _retire(self, sudoable: bool, reason: str) -> None:
        """Replace the task's interpreter (and those stacked on it) before the next task: ``reason``."""
        stack = self._stack(sudoable)
        display.vvv("ns.mitogen RETIRE %s: %s" % (" -> ".join(_describe(s) for s in stack), reason), host=self.host_name())
        self._request("reset", stack=stack)
        self._contexts.clear()

    # -- ConnectionBase ---------------------------------------------------------------
    def exec_command(self, cmd: str, in_data: Optional[bytes] = None, sudoable: bool = True) -> Tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        try:
            request = _planner.decode_marker(in_data)
        except KeyError:
            raise AnsibleError("ns.mitogen: a module request that this process did not make, or already ran") from None
        # ActionBase sets cwd (the playbook's directory) on connections whose transport is "local".
        cwd = to_text(getattr(self, "cwd", None) or "") or None
        if request is not None:
            return self._run_module(request, sudoable, cwd)
        display.vvv("ns.mitogen EXEC %s" % self._shown(cmd), host=self.host_name())
        # As vanilla ssh: commands without input that may become run on a pty (-tt).
        use_pty = bool(not in_data and sudoable and self.has_option("use_tty") and self.get_option("use_tty"))
        # As sshd: the login shell runs a command no become wrapper runs (vanilla's wraps in /bin/sh).
        login_shell = self.login_shell and not self._becomes(sudoable)
        try:
            rc, stdout, stderr = self._call(
                sudoable, EXEC_COMMAND, to_text(cmd), to_bytes(in_data) if in_data else None, cwd, None, use_pty, login_shell
            )
        except _failures.InterpreterNotFound:
            return self._exec_without_python(cmd, in_data, sudoable, use_pty)
        except _failures.TaskInterpreterLost as exc:
            return exc.as_result()
        if use_pty:
            stderr = self._pty_closed_notice()
        return rc, stdout, stderr

    def _pty_closed_notice(self) -> bytes:
        """What the client of the built-in connection prints on stderr as a pty session ends."""
        return b""

    def _exec_without_python(self, cmd: str, in_data: Optional[bytes], sudoable: bool, use_pty: bool) -> Tuple[int, bytes, bytes]:
        """``cmd`` through a one-shot login, where no Python runs (``_oneshot.exec_without_python``)."""
        return plugin_utils.load("_oneshot").exec_without_python(self, cmd, in_data, sudoable, use_pty)

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        """The argv that runs ``cmd`` once as the login user, without our interpreter."""
        raise NotImplementedError

    # -- file transfers (``_transfer``, loaded by the first task that transfers one) --
    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        _transfer.put_file(self, in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Stream ``in_path`` to ``out_path``: from the login interpreter, as vanilla's.

        Called by ansible's fetch action: from the interpreter the task's commands
        run in (the become one if the task becomes; see ``_fetch``).
        """
        super().fetch_file(in_path, out_path)
        _transfer.fetch_file(self, in_path, out_path, _fetch.called_by_fetch_action(sys._getframe(1)))

    def fetch_if_changed(self, in_path: str, out_path: str, unless_sha1: Optional[str]) -> Dict[str, Any]:
        """ns.mitogen.fetch's one round trip (``_transfer.fetch_if_changed``)."""
        return _transfer.fetch_if_changed(self, in_path, out_path, unless_sha1)

    def reset(self) -> None:
        """Drop this host's interpreters (login and become); the next task starts new ones.

        Not those of its intermediaries (``mitogen_via``), which others may use. Where its
        chain cannot be known (ansible-core 2.16's own ``meta: reset_connection`` hands the
        connection no variables), a warning says the reset did nothing.
        """
        try:
            stack = self._login_stack()
        except _via.ViaError as exc:
            display.warning("ns.mitogen: reset_connection did nothing on %s: %s" % (self.host_name(), exc))
            return
        self._request("reset", stack=stack)
        self._contexts.clear()

    def close(self) -> None:
        """End of a task: the interpreters stay alive in the multiplexer."""
        self._report_trips()
        self._task_files = None
        if self._client is not None:
            self._client.close()
            self._client = None
        self._connected = False


def _describe(spec: Dict[str, Any]) -> str:
    if spec.get("method") == "ssh":
        return "ssh:%s@%s" % (spec.get("username") or "", spec.get("hostname"))
    if spec.get("method") in ("sudo", "su", "doas"):
        return "%s:%s" % (spec.get("method"), spec.get("username"))
    if spec.get("container"):
        return "%s:%s" % (spec.get("method"), spec.get("container"))
    if spec.get("method") == _become_any.METHOD:
        return "%s:%s" % (spec.get("plugin"), spec.get("username"))
    return str(spec.get("method"))
