# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running binary and script modules (WANT_JSON, JSON_ARGS, old-style) from memory (private).

Owns: ``run(request, source)``, which runs a module that is not new-style Python
the way ``ActionBase._execute_module`` has the target's shell run it, with nothing
written to disk: the program and its arguments file are anonymous memory files
(``memfd_create``), passed to the child as ``/proc/self/fd/N``. Where the kernel or
Python has no ``memfd_create`` (Python < 3.8, kernels < 3.17), or refuses to execute
one (``vm.memfd_noexec``), the files go where vanilla puts them: a private
``ansible-tmp-*`` directory below the remote temp directory (``tmp`` in the request,
default ``~/.ansible/tmp``), removed after the run.

Request (besides ``_runner``'s keys): ``style`` is ``"binary"`` (executed itself,
as vanilla runs ``<module> <args file>``) or ``"script"`` (``argv`` runs it: the
words of the module's shebang line as the controller rewrote it, i.e. the
``ansible_<x>_interpreter`` rules, then the program's path, then the arguments
file's path); ``args`` is the arguments file's text (JSON for WANT_JSON and binary
modules, ``key=value`` words for old-style ones) or, with ``args_file`` false
(JSON_ARGS: the controller substituted the arguments into the source), nothing.

The child starts in the run's directory and environment (the start-up environment
plus ``env``), stdin reading end of file; stdout and stderr apart, held up to the
reply's limit (``_target.output_limit()``), beyond that dropped and the run reported
as a failed module result. The reply is ``{"rc", "stdout", "stderr"}`` as for a
command: the controller parses stdout as vanilla parses the module's, with the same
failures for output that is not JSON.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from . import _target
from ._capture import oversized_result
from ._state import STATE

if TYPE_CHECKING:  # annotations only
    from ._sources import Source

STYLES = ("binary", "script")
DEFAULT_TMP = "~/.ansible/tmp"


def check(request: Dict[str, Any]) -> None:
    """``ValueError`` unless the program keys of ``request`` are well formed."""
    if request.get("style") not in STYLES:
        raise ValueError("run request: style must be one of %s" % (STYLES,))
    argv = request.get("argv") or []
    if not isinstance(argv, list) or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise ValueError("run request: argv must be a list of str")
    if request["style"] == "script" and not argv:
        raise ValueError("run request: a script needs the interpreter's argv")
    if not isinstance(request.get("tmp", DEFAULT_TMP), str):
        raise ValueError("run request: tmp must be a str")


def _memfd(name: str, data: bytes) -> Optional[int]:
    """An anonymous memory file holding ``data`` (close-on-exec; passed on explicitly), or None."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:
        return None
    try:
        fd = int(memfd_create(name, getattr(os, "MFD_CLOEXEC", 1)))
    except OSError:
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _in_memory(program: bytes, args: Optional[bytes]) -> Iterator[Optional[Tuple[str, Optional[str], List[int]]]]:
    """``(program path, args path or None, fds to pass)`` of memory files; None if none can be made."""
    fds: List[int] = []
    try:
        fd = _memfd("ns.mitogen-module", program)
        if fd is None:
            yield None
            return
        fds.append(fd)
        args_path = None
        if args is not None:
            args_fd = _memfd("ns.mitogen-args", args)
            if args_fd is None:
                yield None
                return
            fds.append(args_fd)
            args_path = "/proc/self/fd/%d" % args_fd
        yield "/proc/self/fd/%d" % fd, args_path, fds
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def _on_disk(program: bytes, args: Optional[bytes], tmp: str) -> Iterator[Tuple[str, Optional[str], List[int]]]:
    """As vanilla: the module and its ``args`` in a private directory below ``tmp``, removed after."""
    base = os.path.expanduser(os.path.expandvars(tmp))
    os.makedirs(base, mode=0o700, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="ansible-tmp-", dir=base)
    try:
        paths: List[Optional[str]] = []
        for name, data, mode in (("module", program, 0o700), ("args", args, 0o600)):
            if data is None:
                paths.append(None)
                continue
            path = os.path.join(directory, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as fp:
                fp.write(data)
            paths.append(path)
        yield str(paths[0]), paths[1], []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _argv(request: Dict[str, Any], program: str, args: Optional[str]) -> List[str]:
    argv = [program] if request["style"] == "binary" else list(request["argv"]) + [program]
    return argv + ([args] if args is not None else [])


def run(request: Dict[str, Any], source: "Source") -> Dict[str, Any]:
    """Run the program ``request`` describes (its code: ``source``); ``{"rc", "stdout", "stderr"}``."""
    check(request)
    args = request.get("args")
    args_data = None
    if request.get("args_file", True):
        args_data = args.encode("utf-8", "surrogateescape") if isinstance(args, str) else bytes(args or b"")
    environ = dict(STATE.start_env or os.environ)
    environ.update((str(k), str(v)) for k, v in (request.get("env") or {}).items())
    cwd = request.get("cwd")
    if cwd and not os.access(cwd, os.X_OK):
        cwd = None
    cwd = cwd or _target.start_dir()
    with _in_memory(source.data, args_data) as files:
        if files is not None:
            try:
                return _spawn(request, _argv(request, files[0], files[1]), files[2], environ, cwd)
            except PermissionError:
                pass  # a memory file the kernel will not execute (vm.memfd_noexec): as vanilla
    with _on_disk(source.data, args_data, request.get("tmp") or DEFAULT_TMP) as files:
        return _spawn(request, _argv(request, files[0], files[1]), files[2], environ, cwd)


def _spawn(
    request: Dict[str, Any], argv: List[str], fds: List[int], environ: Dict[str, str], cwd: Optional[str]
) -> Dict[str, Any]:
    """Run ``argv``; its reply. ``PermissionError`` if the program itself cannot be executed."""
    limit = _target.output_limit()
    try:
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=environ,
            close_fds=True,
            pass_fds=fds,
        )
    except FileNotFoundError:
        # As the shell would say it (ActionBase recognises "<interpreter>: not found").
        return {"rc": 127, "stdout": b"", "stderr": b"/bin/sh: 1: %s: not found\n" % os.fsencode(argv[0])}
    except OSError as exc:
        if isinstance(exc, PermissionError) and argv[0].startswith("/proc/self/fd/"):
            raise  # the memory file: run() falls back to vanilla's temp path
        return {
            "rc": 126,
            "stdout": b"",
            "stderr": b"/bin/sh: 1: %s: %s\n" % (os.fsencode(argv[0]), os.fsencode(exc.strerror or str(exc))),
        }
    (out, err), sizes = _target.communicate(proc, b"", limit)
    rc = proc.wait()
    if rc < 0:
        rc = 128 - rc  # as the shell reports a signal
    if sum(sizes) > limit:
        return {"rc": 1, "stdout": oversized_result(str(request["name"]), rc, sizes, limit), "stderr": b""}
    return {"rc": rc, "stdout": out, "stderr": err}
