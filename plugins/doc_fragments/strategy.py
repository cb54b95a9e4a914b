# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every ns.mitogen strategy shares in its documentation."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
notes:
  - Starts the run's ns.mitogen multiplexer before workers fork, and runs hosts that use
    C(ansible.builtin.ssh) or C(ansible.builtin.local) through C(ns.mitogen.ssh) and
    C(ns.mitogen.local), which keep one Python interpreter per target account alive
    across tasks, plays and C(serial) batches.
  - Set C(mitogen_disable=true) on a host to keep its built-in connection.
  - Other connection types (winrm, network_cli, ...) are left alone and keep working in
    the same play.
"""
