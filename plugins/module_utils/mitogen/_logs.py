# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Forwarding of a context's logging and stray output to its parent (private).

Owns: ``ForwardHandler`` (a logging handler in every child that sends each record
upwards), ``LogReceiver`` (re-emits records from direct children under
``ns.mitogen.remote.<child name>``, whence an intermediary forwards them again), and
``OutputForwarder`` (turns what a child writes on its own stdout/stderr into
records, line by line).

Rules it keeps: a record is sent without waiting (fire and forget); the handler
never recurses into itself (records emitted while forwarding are dropped); a record
from a peer is checked for shape before it is re-emitted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Deque

from ._router import Router
from ._wire import FORWARD_LOG, Message


class ForwardHandler(logging.Handler):
    """Sends every record to the parent's ``FORWARD_LOG`` handle."""

    def __init__(self, router: Router) -> None:
        super().__init__()
        self.router = router
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False) or self.router.parent is None:
            return
        self._local.busy = True
        try:
            text = self.format(record) if record.exc_info else record.getMessage()
            body = (record.name, record.levelno, text)
            self.router.send(Message.encoded(body, dst_id=self.router.parent_id or 0, handle=FORWARD_LOG))
        except Exception:
            pass  # logging must never break the context
        finally:
            self._local.busy = False


class LogReceiver:
    """Re-emits records forwarded by direct children."""

    def __init__(self, router: Router) -> None:
        self.router = router
        router.add_handler(self._on_log, FORWARD_LOG, policy=router.from_child_stream)

    def __repr__(self) -> str:
        return "LogReceiver(%s)" % self.router.name

    def _on_log(self, msg: Message) -> None:
        body = msg.decode()
        if not (
            isinstance(body, tuple)
            and len(body) == 3
            and isinstance(body[0], str)
            and isinstance(body[1], int)
            and isinstance(body[2], str)
        ):
            return
        name, level, text = body
        child = self.router.name_of(msg.src_id)
        logger = logging.getLogger("ns.mitogen.remote.%s" % child.replace(".", "_"))
        if logger.isEnabledFor(level):
            logger.log(level, "[%s] %s: %s", child, name, text)


class OutputForwarder:
    """Reads a pipe (a child's fd 1 or 2, or ssh's stderr) and logs each line.

    The caller keeps ownership of ``fd``; ``stop()`` (broker thread) stops reading.
    ``tail`` keeps the last ``TAIL`` lines (a lost child's last words), ``ended`` is
    set once the pipe reached its end.
    """

    TAIL = 5

    def __init__(self, router: Router, fd: int, name: str, level: int = logging.WARNING) -> None:
        self.router = router
        self.fd = fd
        self.level = level
        self.log = logging.getLogger("ns.mitogen.%s" % name)
        self._buf = b""
        self.tail: Deque[str] = deque(maxlen=self.TAIL)
        self.ended = False
        os.set_blocking(fd, False)
        router.broker.defer(router.broker.add_reader, fd, self._on_readable)

    def stop(self) -> None:
        self.router.broker.remove_reader(self.fd)

    def __repr__(self) -> str:
        return "OutputForwarder(%s)" % self.log.name

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stop()
            self.ended = True
            data, self._buf = self._buf + b"\n", b""  # a last line without its end
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        if len(self._buf) > 65536:
            lines.append(self._buf)
            self._buf = b""
        for line in lines:
            if line.strip():
                text = line.decode("utf-8", "replace").rstrip()
                self.tail.append(text[:500])
                self.log.log(self.level, "%s", text)
