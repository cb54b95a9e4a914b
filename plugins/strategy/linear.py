# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.linear: the built-in linear strategy on persistent interpreters."""

from __future__ import annotations

DOCUMENTATION = r"""
name: linear
short_description: ansible.builtin.linear on ns.mitogen's persistent interpreters
description:
  - Behaves like P(ansible.builtin.linear#strategy), on ns.mitogen's persistent interpreters.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.1.0"
extends_documentation_fragment:
  - ns.mitogen.strategy
"""

from ansible.plugins.strategy.linear import StrategyModule as _Builtin

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install("_strategy")  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._strategy import MitogenStrategyMixin


class StrategyModule(MitogenStrategyMixin, _Builtin):
    """ansible.builtin.linear with ns.mitogen connections."""
