# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-ins for ``signal``, ``atexit``, ``os._exit`` and ``Popen`` while a module runs (private).

Owns: ``run_hooks(run)``, which marks a run active and puts the hooks in place for
its duration, and what they do (see ``_isolation``'s docstring: signal handlers
recorded for the run, timers refused on its thread, atexit handlers kept apart,
``os._exit`` from its thread ending the run as ``OsExit``, run_command's umask-only
``preexec_fn`` done by Popen itself). ``real_*`` are the functions the hooks stand
in for, as they were when this module was first imported.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

if TYPE_CHECKING:  # annotations only
    from ._shapes import RunLike

_ACTIVE: Optional["RunLike"] = None  # the run in progress, for the hooks below

# The real functions the run-time hooks stand in for.
real_signal = signal.signal
real_getsignal = signal.getsignal
_real_alarm = getattr(signal, "alarm", None)
_real_setitimer = getattr(signal, "setitimer", None)
real_atexit_register = atexit.register
_real_atexit_unregister = atexit.unregister
real_os_exit = os._exit
_real_popen_init = subprocess.Popen.__init__


class OsExit(BaseException):
    """``os._exit(status)`` called by the module's thread."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _on_module_thread() -> Optional["RunLike"]:
    """The active run if the caller is its module thread (not a fork, not a helper)."""
    run = _ACTIVE
    if run is not None and run.pid == os.getpid() and run.thread == threading.get_ident():
        return run
    return None


def _virtual_signals() -> Optional["RunLike"]:
    run = _on_module_thread()
    if run is not None and threading.current_thread() is not threading.main_thread():
        return run
    return None


def _signal_hook(signalnum: int, handler: Any) -> Any:
    run = _virtual_signals()
    if run is None:
        return real_signal(signalnum, handler)
    previous = _getsignal_hook(signalnum)  # ValueError for an invalid signal, as the real one
    if not (callable(handler) or handler in (signal.SIG_IGN, signal.SIG_DFL)):
        raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
    if signalnum in (signal.SIGKILL, signal.SIGSTOP):
        raise OSError(22, "Invalid argument")
    run.signals[signalnum] = handler
    return previous


def _getsignal_hook(signalnum: int) -> Any:
    run = _virtual_signals()
    if run is not None and signalnum in run.signals:
        return run.signals[signalnum]
    return real_getsignal(signalnum)


_NO_TIMERS = (
    "ns.mitogen: %s() cannot be used by a module running in a persistent interpreter "
    "(its signal handler cannot be installed from the thread modules run on); "
    "run the task with mitogen_task_isolation=fork"
)


def _alarm_hook(seconds: int) -> int:
    if seconds and _virtual_signals() is not None:
        raise RuntimeError(_NO_TIMERS % "signal.alarm")
    if _real_alarm is None:  # the hook is installed only where signal.alarm exists
        raise RuntimeError("signal.alarm is not available here")
    return int(_real_alarm(seconds))


def _setitimer_hook(which: int, seconds: float, interval: float = 0.0) -> Any:
    if seconds and _virtual_signals() is not None:
        raise RuntimeError(_NO_TIMERS % "signal.setitimer")
    if _real_setitimer is None:  # the hook is installed only where signal.setitimer exists
        raise RuntimeError("signal.setitimer is not available here")
    return _real_setitimer(which, seconds, interval)


def _importing_module(frame: Any) -> Optional[str]:
    """The module whose top-level code ``frame`` runs (an import), or None."""
    if frame is None or frame.f_code.co_name != "<module>":
        return None
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) and name != "__main__" else None


def _atexit_register_hook(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    run = _ACTIVE
    if run is None:
        return real_atexit_register(func, *args, **kwargs)
    getframe = getattr(sys, "_getframe", None)
    importer = _importing_module(getframe(1)) if getframe is not None else None
    run.exit_handlers.append((func, args, kwargs, importer))
    return func


def _atexit_unregister_hook(func: Callable[..., Any]) -> None:
    run = _ACTIVE
    if run is not None:
        run.exit_handlers[:] = [h for h in run.exit_handlers if h[0] != func]
    _real_atexit_unregister(func)


def _os_exit_hook(status: int) -> None:
    if _on_module_thread() is not None:
        raise OsExit(status)
    real_os_exit(status)


# -- run_command's children without fork() ----------------------------------------------
def _reference_preexec(umask: Any) -> Callable[[], None]:
    """The ``preexec_fn`` ansible's ``AnsibleModule.run_command`` passes, word for word."""

    def preexec():  # type: ignore[no-untyped-def] # an annotation would not change its code; kept bare as ansible's
        if umask:
            os.umask(umask)

    return preexec


_PREEXEC_CODE = _reference_preexec(0).__code__
_PREEXEC_SEEN: Set[Any] = set()  # code objects found to be ansible's preexec
_POPEN_HAS_UMASK = sys.version_info >= (3, 9)


def _is_ansible_preexec(func: Any) -> bool:
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    if code not in _PREEXEC_SEEN:
        ref = _PREEXEC_CODE
        if (code.co_code, code.co_names, code.co_consts, code.co_freevars, code.co_argcount) != (
            ref.co_code,
            ref.co_names,
            ref.co_consts,
            ref.co_freevars,
            ref.co_argcount,
        ):
            return False
        _PREEXEC_SEEN.add(code)
    return getattr(func, "__globals__", {}).get("os") is os and len(func.__closure__ or ()) == 1


def spawn_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``kwargs`` with run_command's umask-only ``preexec_fn`` done by Popen itself.

    A ``preexec_fn`` makes CPython fork() the whole interpreter and run Python in the
    child (a persistent interpreter is big: ~2 ms per command); without one it uses
    vfork() (3.10+). The child does exactly the same: sets the umask if one was
    given, then execs. Anything else (another function, a umask Popen cannot set
    here) is left as it was.
    """
    func = kwargs.get("preexec_fn")
    if func is None or "umask" in kwargs or not _is_ansible_preexec(func):
        return kwargs
    umask = func.__closure__[0].cell_contents
    spawn = dict(kwargs)
    del spawn["preexec_fn"]
    if not umask:
        return spawn
    if _POPEN_HAS_UMASK and isinstance(umask, int) and umask > 0:
        spawn["umask"] = umask
        return spawn
    return kwargs


def _popen_init_hook(self: Any, *args: Any, **kwargs: Any) -> None:
    _real_popen_init(self, *args, **spawn_kwargs(kwargs))


@contextlib.contextmanager
def run_hooks(run: "RunLike") -> Iterator[None]:
    """Mark ``run`` active and put the hooks above in place for its duration."""
    global _ACTIVE
    patches: List[Tuple[Any, str, Any]] = [
        (signal, "signal", _signal_hook),
        (signal, "getsignal", _getsignal_hook),
        (atexit, "register", _atexit_register_hook),
        (atexit, "unregister", _atexit_unregister_hook),
        (os, "_exit", _os_exit_hook),
        (subprocess.Popen, "__init__", _popen_init_hook),
    ]
    if _real_alarm is not None:
        patches.append((signal, "alarm", _alarm_hook))
    if _real_setitimer is not None:
        patches.append((signal, "setitimer", _setitimer_hook))
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _unused in patches]
    _ACTIVE = run
    for obj, attr, hook in patches:
        setattr(obj, attr, hook)
    try:
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
        _ACTIVE = None
