# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shim for ansible.cfg files written for the original product.

Point `strategy_plugins` at this directory and keep `strategy = mitogen` (the original's
name for its linear strategy).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen
short_description: Compatibility name for ns.mitogen.linear
description:
  - The same strategy as C(ns.mitogen.linear), under the name the original Mitogen used.
author: ns.mitogen contributors (@ns-mitogen)
"""

from ansible_collections.ns.mitogen.plugins.strategy.linear import StrategyModule

__all__ = ["StrategyModule"]
