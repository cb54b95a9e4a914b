# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The private cache's entries: what eviction keeps, on a real directory."""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("ansible")

from ansible_collections.ns.mitogen.plugins import plugin_utils  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils import _loader  # noqa: E402

DAY = 86400


def _entry(directory, name: str, age_days: float) -> str:
    path = os.path.join(str(directory), name)
    _loader.write_private(str(directory), path, name.encode())
    then = time.time() - age_days * DAY
    os.utime(path, (then, then))
    return path


def test_a_read_refreshes_an_entry_older_than_a_day_only(tmp_path):
    old = _entry(tmp_path, "old", 3)
    recent = _entry(tmp_path, "recent", 0.5)
    recent_mtime = os.stat(recent).st_mtime

    assert plugin_utils.read_private(old) == b"old"
    assert plugin_utils.read_private(recent) == b"recent"

    assert os.stat(old).st_mtime > time.time() - 60
    assert os.stat(recent).st_mtime == recent_mtime  # no write on every read


def test_eviction_keeps_the_entries_still_read(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "CODE_CACHE_ENTRIES", 10)
    paths = [_entry(tmp_path, "e%d" % i, 10 + i) for i in range(10)]  # e9 written longest ago
    assert plugin_utils.read_private(paths[9]) == b"e9"  # in use: read by this run

    _entry(tmp_path, "new", 0)

    left = sorted(os.listdir(str(tmp_path)))
    assert "e9" in left and "new" in left
    # the half modified longest ago went, the entry in use did not
    assert left == sorted(["e0", "e1", "e2", "e3", "e9", "new"])


def test_a_foreign_or_readable_entry_is_not_read_or_touched(tmp_path):
    path = _entry(tmp_path, "shared", 3)
    os.chmod(path, 0o644)
    before = os.stat(path).st_mtime
    assert plugin_utils.read_private(path) is None
    assert os.stat(path).st_mtime == before
