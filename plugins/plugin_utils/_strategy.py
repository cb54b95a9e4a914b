# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ns.mitogen strategies add to the built-in ones (private).

Owns: starting the run's multiplexer before Ansible forks its workers, loading our
connection plugins there too (``start_run``, ``_preload``), reading each task's
module file before its worker forks (``warm_task``): also what the
``ns.mitogen.preload`` callback does under any strategy; and for the strategies, sending hosts on
``ansible.builtin.ssh`` / ``local`` to ``ns.mitogen.ssh`` / ``local``, and, as it
queues a host's task, having the mux send that host's *next* task's module (and
the module_utils it imports) ahead, while the current one runs (``_send_ahead``):
so that a play of modules new to the interpreter costs one round trip per task
and its calls carry no module source. Only for a literal module name, a host on
our connection, and a next task not delegated; peeking the iterator never
advances it (``_compat.peek_next_task``); a module already sent to a host is not
sent again (``_Ahead``). Each worker is forked with the garbage collector's
objects frozen (``_queue_task``), so its collections skip what it inherited.
Nothing of the built-in run loops is copied or replaced: the mixin only wraps
``run()``, ``_queue_task()`` and, for ``meta: reset_connection`` (which the strategy
runs itself, loading the connection named by the host's variables), ``_execute_meta()``:
the smallest public-ish surface there is.

Redirection rules: a host (or a delegated host) whose connection is ``ssh``,
``ansible.builtin.ssh``, ``paramiko``-free ``smart``, ``local`` or
``ansible.builtin.local`` is switched to ours, unless ``mitogen_disable: true`` is
set for it (the per-host opt-out). Every other connection type (winrm,
network_cli, docker, ...) is left alone and keeps working in the same play.
"""

from __future__ import annotations

import contextlib
import gc
import os
from typing import Any, Dict, Iterator, Optional, Set, Tuple

from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins.plugin_utils import (
    _compat,
    _compat_hooks,
    _mux,
    _mux_client,
    _mux_limits,
    _mux_server,
    _original,
    _patterns,
    _planner,
    _via,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase, collection_roots
from ansible_collections.ns.mitogen.plugins.plugin_utils._names import redirect

display = Display()


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _redirect_vars(task_vars: Dict[str, Any], default: Optional[str]) -> None:
    if not _truthy(task_vars.get("mitogen_disable", False)):
        ours = redirect(task_vars.get("ansible_connection", default))
        if ours is not None:
            task_vars["ansible_connection"] = ours
    try:
        _original.check_vars(task_vars, display.warning, task_vars.get("ansible_connection", default))
    except _original.RefusedName as exc:
        # Our connection refuses such a host itself; any other ignores the name.
        if not str(task_vars.get("ansible_connection", default)).startswith("ns.mitogen."):
            display.warning(str(exc))


def _delegated_connection(cvars: Dict[str, Any], templar: Any, name: Any) -> Any:
    """In a worker, for a delegated task: ours for the delegated host's built-in connection, unless it opts out."""
    disable = cvars.get("mitogen_disable", False)
    if isinstance(disable, str) and "{{" in disable:
        disable = templar.template(disable)
    return name if _truthy(disable) else (redirect(name) or name)


def _preload() -> None:
    """Load our connection plugins in the main process, before Ansible forks workers.

    A worker inherits what its parent loaded. Left to itself, each one (one per task
    and host) imports the plugin and our client modules and registers its option
    definitions (from ``_plugin_defs``'s cache, else parsing its DOCUMENTATION): what
    the connection alone costs under a built-in strategy
    (docs/strategy-independence.md). The same for Ansible's module path cache
    (``_planner.warm_up``), and for the patterns our modules compile on first use
    (``_patterns``).
    """
    from ansible.plugins.loader import connection_loader

    for name in ("ns.mitogen.ssh", "ns.mitogen.local"):
        connection_loader.get(name, class_only=True)
    _compat.preload()
    _planner.warm_up()
    _patterns.compile_all()  # what the connection compiles on first use, compiled once for all workers


@contextlib.contextmanager
def _connections_redirected(disabled: bool, host_vars: Optional[Dict[str, Any]] = None) -> Iterator[None]:
    """Meanwhile, ``connection_loader.get`` of a built-in name we replace loads ours.

    ``host_vars``: the host's variables, for our connection's ``mitogen_via``
    (ansible-core 2.16 hands them to no connection method there).
    """
    from ansible.plugins import loader

    connection_loader = loader.connection_loader
    original = connection_loader.get

    def get(name: Any, *args: Any, **kwargs: Any) -> Any:
        plugin = original(name if disabled else (redirect(name) or name), *args, **kwargs)
        if isinstance(plugin, MitogenConnectionBase) and host_vars is not None and "hostvars" in host_vars:
            plugin._via_source = _via.Source(host_vars)
        return plugin

    connection_loader.get = get  # type: ignore[method-assign]
    try:
        yield
    finally:
        del connection_loader.get  # the class's own method again


_started = False


def start_run() -> None:
    """In the playbook's process, before its first worker forks (once): what every worker inherits.

    Starts the multiplexer (workers find it; their requests wait in its socket while
    it starts), reports the original Mitogen's environment variables once, and
    preloads our plugins (``_preload``). Our strategies call it as a play runs; the
    ``ns.mitogen.preload`` callback as a play starts, under any strategy.
    """
    global _started
    if _started:
        return
    _started = True
    _mux_server.start(os.getpid(), collection_roots(), _compat.ansiballz_package_stubs())
    display.vvv(_mux_limits.started_message())
    _original.check_environment(display.warning)
    try:
        _preload()
    except Exception as exc:  # only an optimisation: workers load them anyway
        display.warning("ns.mitogen: could not preload plugins: %s" % exc)


def warm_task(task: Any) -> None:
    """Before ``task``'s workers fork: read its module's file, so that they inherit what was read."""
    try:
        _planner.warm_module(task.action, task.collections)
    except Exception:  # an optimisation: the worker reads the module itself
        pass


class _Ahead:
    """The main process's one-way clients of the run's muxes, for ``send_ahead``."""

    def __init__(self) -> None:
        self._clients: Dict[int, _mux_client.MuxClient] = {}
        self._sent: Dict[str, Set[str]] = {}  # host -> source ids its interpreter was sent
        self._live: Set[str] = set()  # hosts that ran a module of ours: their interpreter exists

    def forget(self, host: str) -> None:
        """``host``'s interpreters were reset: what was sent to them is gone."""
        self._sent.pop(host, None)
        self._live.discard(host)

    def send(self, host: str, following: Any, task_vars: Dict[str, Any], current: Any) -> None:
        """Have the mux serving ``host`` send ``following``'s module ahead to it, if cheap and certain.

        ``current`` is the task just queued for ``host``. Once per host and module
        version: the interpreter keeps what it got. Only recorded as sent once the
        host has run a module on our connection (queued before ``current``): until
        its interpreter exists the mux drops what is sent ahead. A module an
        interpreter lost by a restart this process does not see travels with its
        task's call, as with the connection alone.
        """
        facts = self._facts(following, task_vars)
        if facts is not None and facts[1] not in self._sent.get(host, ()):
            path, source_id, name = facts
            count = task_vars.get("mitogen_cpu_count") or os.environ.get("MITOGEN_CPU_COUNT") or 1
            index = _mux.mux_index(host, max(1, int(count)))
            try:
                client = self._clients.get(index)
                if client is None:  # not started yet (a worker starts it), or gone: tried again next time
                    client = self._clients[index] = _mux_client.MuxClient(_mux.socket_path(os.getpid(), index=index))
                client.send_only("send_ahead", host=host, source_id=source_id, source_path=path, module_name=name)
            except OSError:
                dropped = self._clients.pop(index, None)
                if dropped is not None:
                    dropped.close()
            else:
                if host in self._live:
                    self._sent.setdefault(host, set()).add(source_id)
        if host not in self._live and self._facts(current, task_vars) is not None:
            self._live.add(host)  # by its next task, the interpreter that runs this one exists

    @staticmethod
    def _facts(task: Any, task_vars: Dict[str, Any]) -> Optional[Tuple[str, str, str]]:
        """``_planner.ahead_facts`` of ``task``'s module on a host of ours; None if not certain."""
        action = getattr(task, "action", None)
        if not isinstance(action, str) or "{{" in action or getattr(task, "delegate_to", None):
            return None
        if not str(task_vars.get("ansible_connection", "")).startswith("ns.mitogen."):
            return None
        return _planner.ahead_facts(action, task.collections)


class MitogenStrategyMixin:
    """Mixed in before a built-in StrategyModule."""

    _nsm_iterator: Any = None
    _nsm_ahead: Optional[_Ahead] = None

    def run(self, iterator: Any, play_context: Any, *args: Any, **kwargs: Any) -> Any:
        start_run()
        self._nsm_iterator = iterator
        return super().run(iterator, play_context, *args, **kwargs)  # type: ignore[misc]

    def _queue_task(self, host: Any, task: Any, task_vars: Dict[str, Any], play_context: Any) -> Any:
        try:
            _redirect_vars(task_vars, getattr(task, "connection", None) or getattr(play_context, "connection", None))
            delegated = task_vars.get("ansible_delegated_vars")
            if isinstance(delegated, dict):
                for dvars in delegated.values():
                    if isinstance(dvars, dict):
                        _redirect_vars(dvars, getattr(task, "connection", None))
        except Exception as exc:  # never break a run over an optimisation
            display.warning("ns.mitogen: could not redirect %s's connection: %s" % (host, exc))
        warm_task(task)
        # The worker forked here inherits a frozen heap: its collections skip what it
        # shares with this process (see plugin_utils.spare_inherited_objects); this
        # process collects everything again as soon as it has forked. Not when
        # something else froze objects: unfreezing would undo that.
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            if getattr(task, "delegate_to", None):
                # The delegated host's variables are known only in the worker: it chooses there.
                with _compat_hooks.connection_choice(_delegated_connection):
                    queued = super()._queue_task(host, task, task_vars, play_context)  # type: ignore[misc]
            else:
                queued = super()._queue_task(host, task, task_vars, play_context)  # type: ignore[misc]
        finally:
            if freeze:
                gc.unfreeze()
        self._send_ahead(host, task, task_vars)
        return queued

    def _send_ahead(self, host: Any, task: Any, task_vars: Dict[str, Any]) -> None:
        """After the host's task is queued: its next task's module goes ahead (``_Ahead``)."""
        if self._nsm_iterator is None:
            return
        try:
            following = _compat.peek_next_task(self._nsm_iterator, host)
            if following is None:
                return
            if self._nsm_ahead is None:
                self._nsm_ahead = _Ahead()
            self._nsm_ahead.send(host.name, following, task_vars, task)
        except Exception as exc:  # an optimisation: the next task gets its module as ever
            display.debug("ns.mitogen: no module sent ahead for %s: %s" % (host, exc))

    def _execute_meta(self, task: Any, play_context: Any, iterator: Any, target_host: Any) -> Any:
        """``meta: reset_connection`` on a host we redirected resets our interpreters, not ssh's."""
        if task.args.get("_raw_params") != "reset_connection":
            return super()._execute_meta(task, play_context, iterator, target_host)  # type: ignore[misc]
        host_vars = None
        try:
            host_vars = self._variable_manager.get_vars(play=_compat.play_of(iterator), host=target_host, task=task)  # type: ignore[attr-defined]
            disabled = _truthy(host_vars.get("mitogen_disable", False))
        except Exception:  # the built-in reset then runs as it would without us
            disabled = True
        if self._nsm_ahead is not None:
            self._nsm_ahead.forget(target_host.name)
        with _connections_redirected(disabled, host_vars):
            return super()._execute_meta(task, play_context, iterator, target_host)  # type: ignore[misc]
