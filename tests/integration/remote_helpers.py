"""Functions the tests run inside contexts (served to them by the importer).

Each one plays the part of a misbehaving or ordinary target, using the context's
own router exactly as code running there could.

Served as it is (only the core is lowered, see _lower), so it must run on every
target Python the core supports, 3.6 too: no ``from __future__ import annotations``.
"""

import logging
import os
import sys
import time
from typing import Any

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _child, _files, _service, _wire
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._state import STATE


def router():
    assert STATE.router is not None
    return STATE.router


def identity() -> dict:
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "id": router().context_id,
        "python": list(sys.version_info[:3]),
        "executable": sys.executable,
    }


def echo(value: Any) -> Any:
    return value


def fail(message: str) -> None:
    raise ValueError(message)


def exit_now(code: int) -> None:
    sys.exit(code)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def log_and_print(text: str) -> None:
    logging.getLogger("nsm.test").warning("logged: %s", text)
    print("printed: %s" % text)
    sys.stdout.flush()


def write_file(path: str, text: str) -> None:
    with open(path, "w") as fp:
        fp.write(text)


def _outcome(fn, *args, **kwargs) -> str:
    try:
        fn(*args, **kwargs)
    except CallError as exc:
        return "CallError:%s:%s" % (exc.type_name, exc.remote_message)
    except Exception as exc:
        return "%s:%s" % (type(exc).__name__, exc)
    return "ok"


def call_upwards(context_id: int) -> str:
    """Try to run a function in an ancestor (parents command children, never the reverse)."""
    return _outcome(router().context(context_id).call, os.getpid, timeout=10)


def call_sibling(context_id: int) -> str:
    return _outcome(router().context(context_id).call, os.getpid, timeout=10)


def call_service(dst: int, service: str, method: str, kwargs: dict) -> str:
    return _outcome(_service.call_service, router(), dst, service, method, kwargs, timeout=10)


def forge_source(fake_src: int, dst: int) -> None:
    """Send a call to ``dst`` claiming to come from ``fake_src``."""
    r = router()
    msg = _wire.Message.encoded((("os", "getpid"), (), {}), dst_id=dst, src_id=fake_src, handle=_wire.FORWARD_LOG)
    r.broker.defer(r.parent.send, msg)


def import_outside_allow_list(name: str) -> Any:
    """Ask the parent for a module by name, bypassing this side's own allow-list check."""
    importer: Any = next(f for f in sys.meta_path if type(f).__name__ == "Importer")
    entry = importer.fetch(name, timeout=10)
    return None if entry is None else entry[2]


def pull(path: str, dest: str) -> str:
    return _outcome(_files.pull_file, path, dest)


def send_garbage(data: bytes) -> None:
    """Write raw bytes on the stream to the parent (a broken or hostile peer)."""
    r = router()
    r.broker.defer(r.parent.write, data)


def parent_blocks() -> dict:
    """How many writes to the parent went deflated and raw (a compressed stream's ``blocks_out``)."""
    return dict(router().parent.blocks_out)


def import_and_use(module: str, attr: str, *args: Any) -> Any:
    import importlib

    return getattr(importlib.import_module(module), attr)(*args)


def import_module(name: str) -> str:
    import importlib

    return importlib.import_module(name).__name__


def stats() -> dict:
    return _child.stats()


def natively_importable(name: str) -> bool:
    """Whether the target's own sys.path has ``name`` (without our importer)."""
    import importlib.machinery

    return importlib.machinery.PathFinder.find_spec(name) is not None


def peak_rss_reset() -> None:
    """Reset this process's peak-RSS mark (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fp:
        fp.write("5")


def peak_rss() -> int:
    """Peak resident set size of this process since the last reset, in bytes."""
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def sha256_of(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kill(pid: int, sig: int) -> None:
    os.kill(pid, sig)


def transport_pid(context_id: int) -> int:
    """The pid of the program (ssh, sudo, python) this context started for child ``context_id``."""
    return router().route_for(context_id).owner.pid


def fuzz_parent(count: int, seed: int) -> int:
    """Send ``count`` well-framed messages with random headers and bodies upwards.

    Headers keep the right magic and version (a wrong one would rightly drop the
    stream); destination, source, handle, reply-to, flags and body are random.
    The source is our own id half the time, so the messages pass the forgery
    check and reach the handlers. Dynamic handles are drawn far above those the
    test's own pending calls use (a target may garble its own replies; that is
    its caller's business, tested elsewhere).
    """
    import random

    rng = random.Random(seed)
    r = router()
    frames = []
    for _n in range(count):
        body = rng.choice([rng.randbytes(rng.randint(0, 50)), _codec_random(rng)])
        msg = _wire.Message(
            dst_id=rng.choice([0, 0, r.context_id, rng.randrange(2**32), rng.randrange(8)]),
            src_id=r.context_id if rng.random() < 0.5 else rng.randrange(2**32),
            handle=rng.choice([rng.randrange(12), rng.randrange(50000, 50100), rng.randrange(2**32)]),
            reply_to=rng.choice([0, rng.randrange(1000, 1100), rng.randrange(2**32)]),
            flags=rng.choice([0, 0, _wire.FLAG_ERROR, _wire.FLAG_LAST]),
            data=body,
        )
        frames.append(msg.pack())
    for i in range(0, len(frames), 500):
        r.broker.defer(r.parent.write, b"".join(frames[i : i + 500]))
    return len(frames)


def _codec_random(rng) -> bytes:
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _codec

    value = rng.choice(
        [None, 1, "x", ("ns.mitogen.files", "fetch", {"path": "/etc/passwd", "handle": 1}), [1, 2], {"a": b"b"}, ("m", 1, "t")]
    )
    return _codec.encode(value)


# -- for test_runner.py: the interpreter state a module run must leave as it found it --
def interpreter_state() -> dict:
    """Process-wide state of this interpreter that modules run in it could change."""
    import locale
    import signal
    import threading
    import warnings

    umask = os.umask(0o022)
    os.umask(umask)
    signals = {}
    for signum in sorted(signal.valid_signals()):
        try:
            signals[int(signum)] = repr(signal.getsignal(signum))
        except (OSError, ValueError):
            pass
    return {
        "cwd": os.getcwd(),
        "umask": umask,
        "environ": dict(os.environ),
        "argv": list(sys.argv),
        "path": list(sys.path),
        "meta_path": [type(f).__name__ for f in sys.meta_path],
        "path_hooks": len(sys.path_hooks),
        "hooks": [getattr(sys, h) is getattr(sys, "__%s__" % h) for h in ("excepthook", "displayhook", "unraisablehook")],
        "thread_hook": repr(threading.excepthook),
        "stdio": [repr(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
        "fds": {fd: os.readlink("/proc/self/fd/%d" % fd) for fd in (0, 1, 2)},
        "signals": signals,
        "warnings": repr(warnings.filters),
        "locale": locale.setlocale(locale.LC_ALL),
        "root_logger": [repr(h) for h in logging.getLogger().handlers] + [logging.getLogger().level],
        "atexit": __import__("atexit")._ncallbacks(),
        "threads": sorted(t.name for t in threading.enumerate() if not t.name.startswith("ns.mitogen.call-")),
        "modules": sorted(sys.modules),
        "recursion": sys.getrecursionlimit(),
    }


def native_ansible_paths() -> list:
    """``sys.path`` entries of this interpreter holding an ``ansible`` package of their own."""
    return [p for p in sys.path if p and os.path.isfile(os.path.join(p, "ansible", "__init__.py"))]


def module_origin(name: str) -> str:
    """Where this interpreter's copy of module ``name`` came from ('' if not loaded)."""
    module = sys.modules.get(name)
    return str(getattr(module, "__file__", "")) if module is not None else ""


def module_attr(name: str, attr: str) -> Any:
    """``sys.modules[name].<attr>`` in this interpreter."""
    return getattr(sys.modules[name], attr)


_SETTLED: dict = {}


def reply_then(seconds: float) -> Any:
    """Reply at once, then keep working ``seconds`` (as the runner's restore does)."""
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._calls import AfterReply

    _SETTLED["done"] = False

    def then() -> None:
        time.sleep(seconds)
        _SETTLED["done"] = True

    return AfterReply("replied", then)


def after_reply_done() -> bool:
    return bool(_SETTLED.get("done"))
