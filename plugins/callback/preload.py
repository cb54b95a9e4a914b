# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.preload: what workers inherit from the main process, under any strategy."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preload
type: aggregate
short_description: Load ns.mitogen once in the main process, under any strategy
description:
  - For plays that set C(ansible_connection) to an ns.mitogen connection (C(ns.mitogen.ssh),
    C(ns.mitogen.local), ...) under a built-in strategy such as P(ansible.builtin.linear#strategy),
    P(ansible.builtin.free#strategy) or P(ansible.builtin.host_pinned#strategy).
  - Ansible forks a worker process per host and task. Under a built-in strategy nothing of
    ns.mitogen is loaded before that fork, so every worker loads the connection plugin
    itself. Enabled, this callback does in the main process what the ns.mitogen strategies
    do there, and every worker inherits it - as a play starts, it starts the multiplexer
    (so the first task does not wait for it), reports the original Mitogen's environment
    variables once, loads the ns.mitogen connection plugins and their option definitions
    and fills Ansible's module path cache; as each task starts, it reads the task's module.
  - It prints nothing and changes no result. It is not a strategy, so ansible-core's
    deprecation warning for third-party strategies does not apply.
  - What only the strategies do (switching hosts on C(ansible.builtin.ssh) to C(ns.mitogen.ssh),
    sending each host's next module ahead) is not done; see the collection's
    docs/strategy-independence.md.
  - Enable it with C(callbacks_enabled = ns.mitogen.preload) in the C([defaults]) section of
    C(ansible.cfg), or C(ANSIBLE_CALLBACKS_ENABLED=ns.mitogen.preload).
requirements:
  - enabled in C(callbacks_enabled)
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.1.0"
"""

from typing import Any

from ansible.plugins.callback import CallbackBase

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install("_strategy")  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _strategy


class CallbackModule(CallbackBase):
    """Loads ns.mitogen in the playbook's process before its workers fork."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ns.mitogen.preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_play_start(self, play: Any) -> None:
        _strategy.start_run()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: Any) -> None:
        _strategy.warm_task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        _strategy.warm_task(task)
