# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A plain module_util of the test collection (module_utils/ itself has no __init__.py)."""

from __future__ import annotations

from ansible_collections.nsm_test.utils.plugins.module_utils.text.words import shout


def greet(name: str) -> str:
    return shout("hello %s" % name)
