# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The typed shapes of what crosses module boundaries, for the type checker only (private module).

Owns: ``TypedDict``s of the dicts that cross the wire (a child's configuration and
its hello, a module run request) and the ``Protocol``s of what ``_isolation`` and
``_hooks`` need from a run, of what ``_calls`` needs from the router and of what
the broker needs from a stream. Everything here is inside ``if TYPE_CHECKING:``: at run
time this module defines nothing (targets run Python 3.6, which has neither
``TypedDict`` nor ``Protocol``; ``_lower`` lets such classes through only there),
and others import it only under ``TYPE_CHECKING`` too, so it is never sent to a
target. The code that builds and reads these dicts still checks them as data
from a peer: a shape here is what a well-behaved peer sends, not a guarantee.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple, TypedDict

    class ChildConfig(TypedDict):
        """The first message a child reads (``_bootstrap.connect`` builds it, ``_child.main`` reads it)."""

        context_id: int
        parent_id: int
        name: str  # the transport's description of the child: user@host, sudo:user
        prefixes: List[str]  # the import allow-list
        log_level: int
        max_message: int  # the frame limit of its streams
        hello_handle: int  # where its hello goes, in the parent
        compress: bool  # whether its stream to the parent is compressed

    class _HelloBase(TypedDict):
        pid: int
        python: List[int]  # sys.version_info[:3]
        executable: str
        hostname: str
        uid: int

    class Hello(_HelloBase, total=False):
        """A child's greeting (``_child.main``); ``connect`` may add ``login_output``."""

        login_output: str  # what the program printed while starting (ssh's debug lines)
        home: str  # the user's home directory (``~``), where a task's temporary directory goes
        gid: int
        code: str  # the bytecode it runs (``_bytecode.TAG``): bundles to it may carry code

    class _RunRequestBase(TypedDict):
        name: str  # the module's import name, e.g. ansible.modules.command
        args: str  # the JSON text AnsiballZ would hand the module (bytes accepted too)

    class RunRequest(_RunRequestBase, total=False):
        """A module run request (``_runner.run_module``; see its module docstring)."""

        source: Optional[bytes]  # None: use the cached copy
        source_id: Optional[str]  # the sha1 hex of the source
        profile: Optional[str]  # the serialization profile (ansible-core 2.19+)
        env: Dict[str, str]  # variables added for this run
        cwd: Optional[str]  # default: where the interpreter started
        log: bool  # capture this run's ns.mitogen log records (-vvv)
        style: str  # "binary" or "script": not new-style Python (``_programs``)
        argv: List[str]  # a script's interpreter, from its shebang
        args_file: bool  # whether ``args`` is the text of an arguments file (else none)
        tmp: str  # the remote temp directory, where memory files cannot be had
        prelude: List[Any]  # file operations deferred to this run (``_files.apply_ops``), done first

    class RunReply(TypedDict, total=False):
        """What ``run_module`` returns: the output, or ``need_source``."""

        rc: int
        stdout: bytes
        stderr: bytes
        log: List[str]
        need_source: bool
        retire: str  # why the interpreter must be replaced before the next task

    #: an atexit handler registered during a run: (func, args, kwargs, the module
    #: registering it from its top-level code, if it was imported then)
    ExitHandler = Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any], Optional[str]]

    class BrokerStream(Protocol):
        """What ``_broker.Broker`` (and a reader of its ``streams``) needs of ``_stream.Stream``."""

        remote_id: int

        def close_soon(self, reason: str) -> None: ...

        def disconnect(self, reason: str) -> None: ...

    class CallRouter(Protocol):
        """What ``_calls`` (receivers, contexts, the call pool) needs of ``_router.Router``."""

        def name_of(self, context_id: Optional[int]) -> str: ...

        def reply_policy(self, respondent: int) -> Callable[[Any], bool]: ...

        def add_handler(
            self,
            fn: Callable[[Any], Any],
            handle: Optional[int] = None,
            policy: Optional[Callable[[Any], bool]] = None,
            persist: bool = True,
            respondent: Optional[int] = None,
        ) -> int: ...

        def del_handler(self, handle: int) -> None: ...

        def send(self, msg: Any) -> None: ...

        def run_call(self, msg: Any) -> None: ...

    class RunLike(Protocol):
        """What ``_isolation`` and ``_hooks`` read and record of the run in progress."""

        name: str  # the module's import name
        filename: str  # the module's file name in tracebacks (its sys.argv[0])
        cwd: Optional[str]
        env: Dict[str, Any]
        pid: int  # the process and thread the module runs on
        thread: int
        signals: Dict[int, Any]  # handlers the module installed (never real off the main thread)
        exit_handlers: List[ExitHandler]
        modules_before: Dict[str, Any]  # sys.modules and sys.path as the run found them
        paths_before: Set[str]
