# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multiplexer's cache of what is derived from files, kept across runs (private).

Owns: ``FileCache``, the cache the core's ``_derived`` describes (``get(key)``,
``put(key, files, data)``), kept in the private per-user code cache
(``plugin_utils.code_cache_dir()``, ``NS_MITOGEN_CODE_CACHE``; ``off``: none). Every
``ansible-playbook`` run starts a new multiplexer, which made the boot payload,
lowered each core module it served and scanned each module_util for its imports
again: ~0.3 s of CPU per run, most of it on the first task's path.

Rules (those of ``plugin_utils``' bundle): an entry is found by the SHA-256 of its
key and the Python's magic number, and records each file it was derived from with
its ``plugin_utils.stamp`` (inode, size, modification and change times); ``get``
answers only while every one is unchanged, and the entry's own key matches. An
entry is not written while one of its files changed less than ``RACY_SECONDS``
ago. Written and read as the code cache's entries are (``read_private``,
``write_private``: the user's own, readable by nobody else, written atomically);
a damaged, stale or foreign entry is a miss. Nothing is written into the
collection. ``hits``, ``misses`` and ``writes`` count for the tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import threading
import time
from typing import Optional, Sequence

from ansible_collections.ns.mitogen.plugins import plugin_utils

_HEADER = b"nsm-derived-1\n" + importlib.util.MAGIC_NUMBER
#: Seconds since a file's last change below which nothing derived from it is written.
RACY_SECONDS = 2.0


class FileCache:
    """Values derived only from files, in the private cache ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def __repr__(self) -> str:
        return "FileCache(%s, hits=%d, misses=%d)" % (self.directory, self.hits, self.misses)

    @classmethod
    def open(cls) -> Optional["FileCache"]:
        """The user's cache, or None (``NS_MITOGEN_CODE_CACHE=off``, or no safe directory)."""
        directory = plugin_utils.code_cache_dir()
        return cls(directory) if directory is not None else None

    def _path(self, key: str) -> str:
        return os.path.join(
            self.directory, "derived-" + hashlib.sha256(_HEADER + key.encode("utf-8", "surrogateescape")).hexdigest()
        )

    def get(self, key: str) -> Optional[bytes]:
        """The data kept under ``key``, or None (missing, damaged, foreign or stale)."""
        found = self._read(key)
        with self._lock:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def _read(self, key: str) -> Optional[bytes]:
        blob = plugin_utils.read_private(self._path(key))
        if blob is None or not blob.startswith(_HEADER):
            return None
        try:
            recorded_key, files, data = marshal.loads(blob[len(_HEADER) :])
            if recorded_key != key or not isinstance(data, bytes):
                return None
            for path, recorded in files:
                if plugin_utils.stamp(path) != tuple(recorded):
                    return None
        except (OSError, EOFError, ValueError, TypeError):
            return None
        return data

    def put(self, key: str, files: Sequence[str], data: bytes) -> None:
        """Keep ``data`` under ``key`` while ``files`` are unchanged (not if one just changed)."""
        now = time.time_ns()
        try:
            stamped = [(str(path), plugin_utils.stamp(path)) for path in files]
        except OSError:
            return
        if any(now - stamp[3] < RACY_SECONDS * 1e9 for _path, stamp in stamped):
            return
        plugin_utils.loader_module().write_private(
            self.directory, self._path(key), _HEADER + marshal.dumps((key, stamped, bytes(data)))
        )
        with self._lock:
            self.writes += 1
