# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The main program of every child context (private module).

Owns: turning a freshly bootstrapped interpreter into a context: moving the
message pipe off fds 0/1, pointing stdin at /dev/null and stdout/stderr at pipes
whose lines are forwarded as log records, reading the configuration message,
wiring router, importer, responder, services and logging, greeting the parent,
and exiting cleanly (children first) when the parent goes away or asks it to.

What the context knows about itself (router, services, payload, start-up
directory and environment) goes into ``_state.STATE``, for functions called in it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Tuple, cast

from . import _sources, _zygote
from ._broker import Broker
from ._importer import Importer, Responder, install
from ._logs import ForwardHandler, LogReceiver, OutputForwarder
from ._modwire import Entry
from ._router import Router
from ._service import ServiceRegistry
from ._state import STATE
from ._wire import KEEP_SOURCE, FrameParser, Message

if TYPE_CHECKING:  # annotations only
    from ._shapes import ChildConfig, Hello


def _read_config(fd: int) -> Tuple[ChildConfig, bytes]:
    parser = FrameParser()
    messages: List[Message] = []
    while not messages:
        data = os.read(fd, 65536)
        if not data:
            os._exit(1)
        messages = parser.feed(data)
    rest = b"".join(m.pack() for m in messages[1:]) + bytes(parser._buf)
    config = messages[0].decode()
    if not isinstance(config, dict):
        os._exit(1)
    return cast("ChildConfig", config), rest


def _redirect_stdio() -> Tuple[int, int, int, int]:
    """Move the message pipe to new fds; return (in, out, stdout_r, stderr_r)."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    for fd in (in_fd, out_fd, out_r, err_r):
        os.set_inheritable(fd, False)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    sys.stdin = open(os.devnull)
    return in_fd, out_fd, out_r, err_r


def _lead_own_group() -> None:
    """Be the leader of a process group holding only us and what our calls start."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass  # already a session (hence group) leader: sshd and sudo make us one


def _drop_terminal() -> None:
    """Have no controlling terminal, as a module under vanilla's pipelining has none.

    sudo runs on a private terminal (to answer its prompt, and for requiretty); we
    inherit it. With it, a program a module runs that asks on /dev/tty (a nested
    sudo, ssh's host key question) would wait for an answer nobody gives, where
    without one it fails at once. Only this process lets go of it (not sudo's).
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return  # none: the usual case
    # A session leader letting go hangs up its foreground group: that is us (a
    # program that exec'd the interpreter in its place, as a stand-in sudo does).
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        import fcntl
        import termios

        fcntl.ioctl(fd, termios.TIOCNOTTY)
    except (ImportError, AttributeError, OSError):
        pass
    finally:
        os.close(fd)
        signal.signal(signal.SIGHUP, old)


def _hang_up_group() -> None:
    """Our parent left while calls were running: end what they started, as a hang-up would.

    (Vanilla Ansible's module on an ssh pty gets SIGHUP when the run is interrupted.)
    Processes that left our group (daemons, async jobs, our own child contexts) are
    not touched; neither is anything a finished call left running.
    """
    if os.getpgrp() != os.getpid():
        return  # not our own group: never signal our parent's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGHUP)
    except OSError:
        pass


def main(modules: Dict[str, Tuple[bool, str]], payload: bytes) -> None:
    """Run this process as a child context until its parent lets go."""
    state = STATE
    state.start_cwd, state.start_env = os.getcwd(), dict(os.environ)
    _lead_own_group()
    _drop_terminal()
    in_fd, out_fd, out_r, err_r = _redirect_stdio()
    config, rest = _read_config(in_fd)
    state.payload, state.boot_modules = payload, frozenset(modules)
    # before any thread or module: the clean process forked runs start from
    _zygote.start(modules, dict(config), close=(in_fd, out_fd, out_r, err_r))

    broker = Broker()
    router = Router(broker, config["context_id"], config["name"], config["max_message"])
    parent = router.make_stream(in_fd, out_fd, "parent", initial=rest, compress=bool(config.get("compress")))
    router.set_parent(parent, config["parent_id"])
    cache: Dict[str, Entry] = {
        name: (is_pkg, "<ns.mitogen>/" + name, src.encode("utf-8"), ()) for name, (is_pkg, src) in modules.items()
    }
    importer = Importer(router, config["prefixes"], cache)
    install(importer)
    router.add_handler(_sources.on_source_ahead, KEEP_SOURCE, policy=router.from_parent)
    router.responder = Responder(router, config["prefixes"], importer)
    state.services = ServiceRegistry(router)
    LogReceiver(router)
    state.router = router

    root = logging.getLogger()
    forward = ForwardHandler(router)
    # The handler filters too: a logger lowered for a while (a run's -vvv capture)
    # must not flood the parent.
    forward.setLevel(config.get("log_level", logging.WARNING))
    root.handlers[:] = [forward]
    root.setLevel(config.get("log_level", logging.WARNING))
    OutputForwarder(router, out_r, "stdout")
    OutputForwarder(router, err_r, "stderr")

    broker.start()
    broker.defer(parent.start)
    hello: Hello = {
        "pid": os.getpid(),
        "python": list(sys.version_info[:3]),
        "executable": sys.executable,
        "hostname": socket.gethostname(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "home": _home(),
        "code": importer.bytecode.tag,  # what code it runs: bundles to it may carry that code (_bytecode)
    }
    router.send(Message.encoded(hello, dst_id=config["parent_id"], handle=config["hello_handle"]))
    broker.join()
    if router.pool.busy:
        _hang_up_group()
    router.close()
    # Children exist only if this context started some, which imported _spawn
    # (on demand: a target that never relays never receives it).
    spawn = sys.modules.get(__name__.rpartition(".")[0] + "._spawn")
    if spawn is not None:
        spawn.reap_all(5.0)
    hopcache = sys.modules.get(__name__.rpartition(".")[0] + "._hopcache")  # an intermediary's files
    if hopcache is not None:
        hopcache.cleanup()
    os._exit(0)


def stats() -> Dict[str, Any]:
    """Counters of this context, for diagnostics and tests.

    ``modules_sent`` maps each child id to how many times each module was sent to
    it; ``import_requests`` counts requests this context made upwards;
    ``modules_ahead`` and ``sources_ahead`` what its parent sent before it was needed;
    ``calls_peak``: the most calls it ran at once (an intermediary starting children
    in parallel runs one call per start); ``modules_compiled`` and
    ``modules_from_code``: modules its importer compiled from source, and ran from
    the code its parent sent (``_bytecode``).
    """
    router = STATE.router
    if router is None:
        return {}
    responder = router.responder
    importer = next((f for f in sys.meta_path if isinstance(f, Importer)), None)
    return {
        "context_id": router.context_id,
        "router": dict(router.stats),
        "modules_sent": {cid: dict(mods) for cid, mods in responder.sent.items()} if responder else {},
        "modules_refused": responder.refused if responder else 0,
        "import_requests": importer.requests if importer else 0,
        "modules_ahead": importer.loaded if importer else 0,
        "sources_ahead": _sources.STATS["sources_ahead"],
        "cached_modules": sorted(importer.cache) if importer else [],
        "calls_peak": router.pool.peak,
        "modules_compiled": importer.bytecode.counts["compiled"] if importer else 0,
        "modules_from_code": importer.bytecode.counts["from_code"] if importer else 0,
    }


def _home() -> str:
    """This user's home as the password database has it (as ``echo ~user`` says), else ``$HOME``."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return os.path.expanduser("~")
