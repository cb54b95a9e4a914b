# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.host_pinned: the built-in host_pinned strategy on persistent interpreters."""

from __future__ import annotations

DOCUMENTATION = r"""
name: host_pinned
short_description: ansible.builtin.host_pinned on ns.mitogen's persistent interpreters
description:
  - Behaves like P(ansible.builtin.host_pinned#strategy), on ns.mitogen's persistent interpreters.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.1.0"
extends_documentation_fragment:
  - ns.mitogen.strategy
"""

from ansible.plugins.strategy.host_pinned import StrategyModule as _Builtin

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install("_strategy")  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._strategy import MitogenStrategyMixin


class StrategyModule(MitogenStrategyMixin, _Builtin):
    """ansible.builtin.host_pinned with ns.mitogen connections."""
