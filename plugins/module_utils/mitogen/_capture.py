# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The output of a module run, captured as AnsiballZ's process would give it (private).

Owns: ``Capture`` (fds 1 and 2 and ``sys.std*`` redirected for the run, read back
after it, or not read at all when over the reply's limit) and
``oversized_result``, the failed module result that then stands for the output.
See ``_runner``'s docstring, "Output".
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from typing import Any, List, Optional, Tuple

from . import _target


def _anonymous_file() -> Optional[int]:
    """A read/write fd of an unnamed file (memfd, else an unlinked temp file)."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            return int(memfd_create("ns.mitogen-module-output", getattr(os, "MFD_CLOEXEC", 0)))
        except OSError:
            pass
    try:
        with tempfile.TemporaryFile() as fp:
            return os.dup(fp.fileno())
    except OSError:
        return None


def _read_all(fd: int, size: int) -> bytes:
    """The file's ``size`` bytes (or what is there), read at once: no second copy."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: List[bytes] = []
    while True:
        chunk = os.read(fd, max(size + 1, 1 << 16))
        if not chunk:
            return b"".join(chunks)  # one chunk: joined without a copy
        chunks.append(chunk)
        size = 0


def flush(*streams: Any) -> None:
    for stream in streams:
        try:
            stream.flush()
        except Exception:
            pass


def _stdio_like(template: Any, raw: Any, encoding: str, errors: str) -> io.TextIOWrapper:
    """A text stream over ``raw`` buffered as the interpreter's own ``template`` was.

    So that output interleaves as it would in a fresh Python started in the same
    environment (``PYTHONUNBUFFERED``, ``-u``: unbuffered; else block buffered, and
    stderr line buffered).
    """
    unbuffered = bool(getattr(template, "write_through", False)) and isinstance(getattr(template, "buffer", None), io.FileIO)
    buffer = raw if unbuffered or isinstance(raw, io.BytesIO) else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffer,
        encoding=encoding,
        errors=getattr(template, "errors", None) or errors,
        line_buffering=bool(getattr(template, "line_buffering", False)),
        write_through=unbuffered,
    )


class Capture:
    """The run's stdio: fds 1 and 2 and ``sys.std*`` while it runs, read back after.

    Falls back to Python-level capture (``sys.stdout``/``sys.stderr`` only) when no
    anonymous file can be made. Output over ``limit`` bytes in all is not read:
    ``oversized`` is then ``(stdout size, stderr size)`` and both stay empty.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = b""
        self.stderr = b""
        self.oversized: Optional[Tuple[int, int]] = None
        self._files: List[int] = []
        self._saved_fds: List[int] = []
        self._buffers: List[io.BytesIO] = []
        self._streams: List[Any] = []
        self._saved: Tuple[Any, Any, Any] = (sys.stdin, sys.stdout, sys.stderr)

    def __enter__(self) -> "Capture":
        self._saved = (sys.stdin, sys.stdout, sys.stderr)
        flush(sys.stdout, sys.stderr)
        encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
        files = [_anonymous_file(), _anonymous_file()]
        if None not in files:
            self._files = [fd for fd in files if fd is not None]
            out = _stdio_like(sys.__stdout__, io.FileIO(1, "w", closefd=False), encoding, "strict")
            err = _stdio_like(sys.__stderr__, io.FileIO(2, "w", closefd=False), encoding, "backslashreplace")
            self._saved_fds = [os.dup(1), os.dup(2)]
            os.dup2(self._files[0], 1)
            os.dup2(self._files[1], 2)
        else:
            for fd in files:
                if fd is not None:
                    os.close(fd)
            self._buffers = [io.BytesIO(), io.BytesIO()]
            out = _stdio_like(sys.__stdout__, self._buffers[0], encoding, "strict")
            err = _stdio_like(sys.__stderr__, self._buffers[1], encoding, "backslashreplace")
        stdin = open(os.devnull, encoding=encoding)
        self._streams = [stdin, out, err]
        sys.stdin, sys.stdout, sys.stderr = stdin, out, err
        return self

    def __exit__(self, *exc: Any) -> None:
        stdin, out, err = self._streams
        flush(out, err)
        try:
            if self._buffers:
                self._keep(*(len(b.getbuffer()) for b in self._buffers))
                if self.oversized is None:
                    self.stdout, self.stderr = self._buffers[0].getvalue(), self._buffers[1].getvalue()
            for stream in self._streams:
                try:
                    stream.close()
                except Exception:
                    pass
            if self._files:
                try:
                    os.dup2(self._saved_fds[0], 1)
                    os.dup2(self._saved_fds[1], 2)
                    sizes = [os.fstat(fd).st_size for fd in self._files]
                    self._keep(*sizes)
                    if self.oversized is None:
                        self.stdout, self.stderr = _read_all(self._files[0], sizes[0]), _read_all(self._files[1], sizes[1])
                finally:
                    for fd in self._saved_fds + self._files:
                        os.close(fd)
        finally:
            sys.stdin, sys.stdout, sys.stderr = self._saved

    def _keep(self, out_size: int, err_size: int) -> None:
        if out_size + err_size > self.limit:
            self.oversized = (out_size, err_size)


def oversized_result(name: str, rc: int, sizes: Tuple[int, int], limit: int) -> bytes:
    """The failed module result (JSON, as a module prints it) for output a reply cannot carry."""
    advice = (
        "Make the module print less, or have it write large output to a file on the target and fetch that "
        "file (ansible.builtin.fetch streams files of any size)."
    )
    msg = "ns.mitogen: " + _target.too_much_output("module %s" % name, sizes, limit, rc, advice)
    return json.dumps({"failed": True, "msg": msg}).encode("utf-8")
