"""Functions the tests run inside contexts (served to them by the importer).

Each one plays the part of a misbehaving or ordinary target, using the context's
own router exactly as code running there could.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _child, _files, _service, _wire
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError


def router():
    assert _child.ROUTER is not None
    return _child.ROUTER


def identity() -> dict:
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "id": router().context_id,
        "python": list(sys.version_info[:3]),
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
    importer = next(f for f in sys.meta_path if type(f).__name__ == "Importer")
    entry = importer.fetch(name, timeout=10)
    return None if entry is None else entry[2]


def pull(path: str, dest: str) -> str:
    return _outcome(_files.pull_file, path, dest)


def send_garbage(data: bytes) -> None:
    """Write raw bytes on the stream to the parent (a broken or hostile peer)."""
    r = router()
    r.broker.defer(r.parent.write, data)


def import_and_use(module: str, attr: str, *args: Any) -> Any:
    import importlib

    return getattr(importlib.import_module(module), attr)(*args)


def stats() -> dict:
    return _child.stats()


def natively_importable(name: str) -> bool:
    """Whether the target's own sys.path has ``name`` (without our importer)."""
    import importlib.machinery

    return importlib.machinery.PathFinder.find_spec(name) is not None
