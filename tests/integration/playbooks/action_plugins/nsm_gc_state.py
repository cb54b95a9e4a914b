# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test action: append this worker's garbage-collector state to ``path`` (controller side).

A line of JSON: the worker's pid, how many objects are frozen (``gc.get_freeze_count()``),
whether ns.mitogen's controller code is loaded in it, and whether it was loaded by
another process (the main process: the worker inherited it). Used by test_worker_gc.py.
"""

from __future__ import annotations

import gc
import json
import os
import sys

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        ours = sys.modules.get("ansible_collections.ns.mitogen.plugins.plugin_utils")
        line = {
            "pid": os.getpid(),
            "frozen": gc.get_freeze_count(),
            "ours_loaded": "ansible_collections.ns.mitogen.plugins.plugin_utils._connection" in sys.modules,
            "ours_inherited": ours is not None and ours._installed_by not in (None, os.getpid()),
        }
        with open(self._task.args["path"], "a") as fp:
            fp.write(json.dumps(line) + "\n")
        result["changed"] = False
        return result
