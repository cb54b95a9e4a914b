# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting a child context from any argv (private module).

Owns: ``connect`` (spawn a child, drive it through the handshake, wait for its
``hello``) and ``connect_remote`` (the same, run in an intermediary). Its parts
live apart: the first stage and the payload in ``_payload``, the spawned
programs and their reaping in ``_spawn``, the prompts and ``NSM-READY`` in
``_handshake``; what callers use of them is re-exported here (``__all__``).

How a child starts:
1. ``<transport argv> python -c <first_stage()>``. The first stage checks the Python
   version (it parses on 2.7 and 3.x, and says plainly which Python it found and
   which the caller wants, ``python_min``), writes
   ``NSM-READY`` on stdout, then reads a 4-byte length and that many bytes of
   compressed payload from stdin, and runs it.
2. The payload installs the core modules from memory and reads one framed message:
   the child's configuration (ids, name, import allow-list, log level), as data.
3. From then on stdin/stdout carry framed messages; the child's own stdout/stderr
   are forwarded as log records. It greets the parent with a ``hello`` message.

Where no prompt is expected on stdin, the payload is written at once, before the
child is even running, so start-up costs no extra round trip.
"""

from __future__ import annotations

import logging
import struct
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from . import _methods, _transports
from ._become_plugin import SERVICE as BECOME_SERVICE
from ._become_plugin import PluginBecome
from ._calls import Context, Receiver
from ._errors import ConnectError, StreamError, TimeoutError
from ._handshake import Handshake
from ._logs import OutputForwarder
from ._payload import PACKAGE, build_payload, core_modules, first_stage, payload, use_cache
from ._router import Router
from ._service import call_service
from ._spawn import ChildProcess, close_quietly, read_some, reap_all, write_some
from ._state import STATE
from ._wire import Message

if TYPE_CHECKING:  # annotations only
    from ._shapes import ChildConfig

#: What callers use of the start of a child: ``connect`` and ``connect_remote`` are
#: this module's; the rest is re-exported from ``_payload`` and ``_spawn``.
__all__ = [
    "connect",
    "connect_remote",
    "PACKAGE",
    "first_stage",
    "core_modules",
    "build_payload",
    "payload",
    "use_cache",
    "ChildProcess",
    "reap_all",
    "read_some",
    "write_some",
]

LOG = logging.getLogger("ns.mitogen.bootstrap")


def connect(
    router: Router,
    spec: Dict[str, Any],
    prefixes: List[str],
    context_id: Optional[int] = None,
    log_level: int = logging.WARNING,
    default_python: str = "",
    on_spawn: Optional[Callable[[], None]] = None,
) -> Tuple[Context, Dict[str, Any]]:
    """Start the child described by ``spec`` below ``router``'s context.

    ``on_spawn`` is called in this thread as soon as the child program runs, before
    the handshake: work that can overlap its login (ssh's takes ~0.2 s) but should
    not delay its start, as a CPU-bound thread would (it holds the GIL).
    Returns the child's ``Context`` and its hello (``_shapes.Hello``: pid, Python version, ...; with
    ``login_output``, what the program printed while starting, where the transport
    keeps it: ssh's own debug lines).
    Raises ``SpecError`` for a malformed spec and ``ConnectError`` for any failure
    to start it. The spec's ``connect_timeout`` bounds each phase of a start: reaching
    a running Python through the transport (login, prompts, the first stage's
    ``NSM-READY``; per attempt: a transport may try again after a failure, see
    ``Transport.retry_pauses``), then, from that moment, the interpreter's boot (the
    payload, the core's start, the hello) - as ``ansible.builtin.ssh``'s timeout bounds
    its connection, never the Python work after it. When many targets start at once
    on a loaded controller, the boot is what slows down (CPU), and it no longer eats
    the login's allowance.
    """
    transport = _methods.make(spec)
    if isinstance(transport, PluginBecome):  # its plugin's logic runs in an ancestor
        service_context = transport.spec["service_context"]
        transport.ask = lambda method, kwargs, timeout: call_service(
            router, service_context, BECOME_SERVICE, method, kwargs, timeout
        )
    name = transport.describe()
    timeout = float(transport.spec["connect_timeout"])
    cid = context_id if context_id is not None else router.allocate_id()
    hello = Receiver(router, respondent=cid)
    config: ChildConfig = {
        "context_id": cid,
        "parent_id": router.context_id,
        "name": name,
        "prefixes": list(prefixes),
        "log_level": log_level,
        "max_message": router.max_message,
        "hello_handle": hello.handle,
        "compress": transport.compress,
    }
    if not default_python and transport.on_this_machine:
        default_python = sys.executable  # local and sudo: the same machine as this process
    argv = transport.argv(transport.boot_argv(first_stage(transport.python_min_text()), default_python))
    pauses = transport.retry_pauses()
    attempt = 0
    while True:
        deadline = time.monotonic() + timeout
        try:
            proc, handshake, rest, boot_modules = _start(router, transport, argv, config, deadline, on_spawn)
            break
        except ConnectError as exc:
            if attempt >= len(pauses) or not transport.should_retry(exc):
                hello.close()
                raise
            LOG.info("%s: attempt %d failed (%s); trying again in %d s", name, attempt + 1, exc.reason, pauses[attempt])
            time.sleep(pauses[attempt])
            attempt += 1
            on_spawn = None
            transport = _methods.make(spec)  # no prompt answered yet
        except BaseException:
            hello.close()
            raise
    deadline = time.monotonic() + timeout  # the boot's own allowance, from NSM-READY
    stream = router.make_stream(proc.stdout, proc.stdin, name, owner=proc, initial=rest, compress=transport.compress)
    _watch_stderr(router, proc, name)
    router.register_stream(stream, cid, name)
    if router.responder is not None:
        router.responder.started_with(cid, boot_modules)  # never sent again to this child
    try:
        info = hello.get(max(0.1, deadline - time.monotonic())).decode()
    except (StreamError, TimeoutError) as exc:
        raise ConnectError(
            name, "the interpreter started but did not complete the handshake: %s" % exc, "handshake", handshake.output()
        ) from None
    finally:
        hello.close()
    if transport.keep_login_output and isinstance(info, dict):
        info = dict(info, login_output=handshake.output())
    if isinstance(info, dict) and isinstance(info.get("pid"), int):
        proc.remote_pid = info["pid"]
    if router.responder is not None and isinstance(info, dict) and transport.local_link:
        router.responder.accepts_code(cid, info.get("code"))  # its bundles may carry code (_bytecode)
    return Context(router, cid, name), info


def _start(
    router: Router,
    transport: _transports.Transport,
    argv: List[str],
    config: ChildConfig,
    deadline: float,
    on_spawn: Optional[Callable[[], None]],
) -> Tuple[ChildProcess, "Handshake", bytes, FrozenSet[str]]:
    """One attempt: spawn ``argv`` and drive it to ``NSM-READY``; the process is reaped on failure."""
    name = transport.describe()
    cid = config["context_id"]
    LOG.debug("%s: starting %r", router.name, argv)
    try:
        proc = ChildProcess(argv, transport.use_pty, name, owner=router)
    except OSError as exc:
        reason, hint = transport.explain_spawn(argv[0], exc)
        err = ConnectError(name, reason, "spawn", hint=hint)
        err.returncode = 127 if isinstance(exc, FileNotFoundError) else 126  # as a shell says it
        raise err from None
    proc.transport = transport
    if on_spawn is not None:
        on_spawn()
    # The payload is built (once per process, ~0.1 s) while ssh is logging in.
    try:
        data, boot_modules = payload()
        boot = struct.pack(">I", len(data)) + data + Message.encoded(config, dst_id=cid, src_id=router.context_id).pack()
        handshake = Handshake(transport, proc, boot, deadline)
        rest = handshake.run()
    except BaseException:
        close_quietly(proc.stdin, proc.stdout)
        proc.reap_later()
        raise
    return proc, handshake, rest, boot_modules


def _watch_stderr(router: Router, proc: ChildProcess, name: str) -> None:
    """Log what the child program (ssh, sudo, ...) writes on stderr after start."""
    if proc.stderr is not None:
        forwarder = OutputForwarder(router, proc.stderr, "stderr.%s" % name, logging.INFO)
        proc.on_detach.append(forwarder.stop)
        proc.stderr_watch = forwarder  # its last lines explain a loss (explain_loss)


def connect_remote(spec: Dict[str, Any], context_id: int, log_level: int = logging.WARNING, pool_size: int = 0) -> Dict[str, Any]:
    """Run in an intermediary: start the child ``spec`` below this context.

    The caller (an ancestor) allocated ``context_id``; the route to it reaches the
    ancestors through ``ADD_ROUTE``. Returns the child's hello. This context then
    serves its children module sources and files from its cache (``_hopcache``).
    ``pool_size``: this context's call pool grows to at least that many threads, so
    that as many children can start at once (each start holds a thread).
    """
    router = STATE.router
    if router is None:
        raise StreamError("connect_remote() runs only inside a child context")
    if pool_size > router.pool.size:
        router.pool.size = pool_size
    from . import _hopcache  # on demand: only intermediaries need it

    _hopcache.install(router)
    _ctx, hello = connect(router, spec, router.responder.prefixes, context_id, log_level)
    return hello
