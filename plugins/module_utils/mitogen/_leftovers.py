# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logging and file descriptors as a module run leaves them, put back (private).

Owns two of the context managers ``_isolation.run_state`` enters around a run
(see ``_isolation``'s docstring for the whole list and what each undoes):
``loggers()`` (during the run the root logger as in a fresh process; after it,
every logger as it was) and ``file_descriptors()`` (descriptors the run left
open, closed where that is safe).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import socket
import stat
from typing import Any, Iterator, List, Optional, Set, Tuple

LOG = logging.getLogger("ns.mitogen.runner")


def _logger_state(logger: logging.Logger) -> Tuple[List[Any], int, bool, bool, List[Any]]:
    return list(logger.handlers), logger.level, logger.propagate, logger.disabled, list(logger.filters)


OWN_LOGGER = "ns.mitogen"  # this interpreter's own records (they go to the controller)


@contextlib.contextmanager
def loggers() -> Iterator[None]:
    """Logging as a fresh process has it during the run; every logger as it was after.

    During the run the root logger has no handlers and level ``WARNING``, as in a new
    interpreter (a module's ``logging.warning`` reaches its stderr through
    ``logging.lastResort``, and ``logging.basicConfig`` configures); the handlers
    that forward this interpreter's records to the controller serve the
    ``ns.mitogen`` logger alone meanwhile. After it, every logger's handlers, level,
    filters, ``propagate`` and ``disabled`` are put back, and ``logging.disable``;
    handlers the run added are closed. Loggers created during the run stay (the
    ``logging`` module keeps them by name), without the handlers or settings it gave them.
    """
    manager = logging.root.manager
    root, own = logging.getLogger(), logging.getLogger(OWN_LOGGER)
    saved = {name: _logger_state(lg) for name, lg in list(manager.loggerDict.items()) if isinstance(lg, logging.Logger)}
    root_state, disabled = _logger_state(root), manager.disable
    kept = {id(h) for state in list(saved.values()) + [root_state] for h in state[0]}
    if root.handlers:
        own.handlers[:] = own.handlers + [h for h in root.handlers if h not in own.handlers]
        own.propagate = False
        if own.level == logging.NOTSET:
            own.level = root.level
        root.handlers[:] = []
    root.level = logging.WARNING
    with contextlib.suppress(Exception):
        manager._clear_cache()  # type: ignore[attr-defined]  # the levels loggers cached (3.7+)
    try:
        yield
    finally:
        fresh: Tuple[List[Any], int, bool, bool, List[Any]] = ([], logging.NOTSET, True, False, [])
        now = [(root, root_state)] + [
            (lg, saved.get(name, fresh)) for name, lg in list(manager.loggerDict.items()) if isinstance(lg, logging.Logger)
        ]
        for logger, state in now:
            if _logger_state(logger) == state:
                continue
            for handler in [h for h in logger.handlers if id(h) not in kept]:
                with contextlib.suppress(Exception):
                    handler.close()
            logger.handlers[:] = state[0]
            logger.filters[:] = state[4]
            logger.propagate, logger.disabled = state[2], state[3]
            logger.level = state[1]
        with contextlib.suppress(Exception):
            manager._clear_cache()  # type: ignore[attr-defined]
        if manager.disable != disabled:
            logging.disable(disabled)


def _open_fds() -> Optional[Set[int]]:
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except (OSError, ValueError):
        return None  # no /proc: not followed


def _python_owners(fds: Set[int]) -> Set[int]:
    """Of ``fds``, those a live Python file or socket object holds (closing them is its job)."""
    owned = set()
    kinds = (io.IOBase, socket.socket)
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, kinds):  # (3.6: raises for objects without __class__)
                continue
            fd = obj.fileno()
        except Exception:
            continue
        if fd in fds:
            owned.add(fd)
    return owned


@contextlib.contextmanager
def file_descriptors() -> Iterator[None]:
    """File descriptors the run left open are closed.

    Those of Python objects nothing refers to any more (``open()`` without close,
    in the module's dropped globals) by a garbage collection, which closes them as
    their objects go; of the rest, those no Python object holds that name a file or
    directory are closed by number. Left open (and logged): descriptors a live object
    still holds (a library that stays cached keeps it) and sockets, pipes and other
    kinds without an owner (a C library's connection, e.g. to sssd).
    """
    before = _open_fds()
    try:
        yield
    finally:
        if before is not None:
            try:
                _close_left_open(before)
            except Exception:  # never fail the restoring: the rest must still be put back
                LOG.debug("file descriptors left open: not closed", exc_info=True)


def _close_left_open(before: Set[int]) -> None:
    leaked = (_open_fds() or set()) - before
    if leaked:
        gc.collect()
        leaked &= _open_fds() or set()
    if leaked:
        _close_leaked(leaked - _python_owners(leaked))


def _close_leaked(fds: Set[int]) -> None:
    kept = []
    for fd in sorted(fds):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            with contextlib.suppress(OSError):
                os.close(fd)
                continue
        kept.append(fd)
    closed = sorted(set(fds) - set(kept))
    if closed or kept:
        LOG.debug("file descriptors the run left open: closed %s, left %s", closed, kept)
