# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module_util in an implicit namespace package (module_utils/text/ has no __init__.py)."""

from __future__ import annotations


def shout(text: str) -> str:
    return text.upper() + "!"
