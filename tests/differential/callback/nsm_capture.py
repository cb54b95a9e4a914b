"""Callback plugin of the differential harness: every task result, as JSON lines.

Owns the capture format that `tests/differential/runner.py` reads back.  Enabled
by the runner with ANSIBLE_CALLBACK_PLUGINS=<this dir> and
ANSIBLE_CALLBACKS_ENABLED=nsm_capture; writes to the file named by
NSM_DIFF_CAPTURE (one JSON object per line, flushed as it goes):

    {"kind": "result", "seq": N, "time": <epoch>, "host": "h1", "play": "...", "task": "...",
     "action": "ansible.builtin.copy", "path": "files.yml:12",
     "handler": false, "item": null | index,
     "status": "ok" | "failed" | "skipped" | "unreachable" | "retry",
     "ignore_errors": bool | null, "result": {...}}
    {"kind": "stats", "host": "h1", "stats": {"ok": N, "changed": N, ...}}

The result dict is the one callbacks receive (no_log results arrive censored).
Loop tasks give one record per item ("item": 0, 1, ...) plus the aggregate
record ("item": null) that carries the `results` list.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: nsm_capture
    type: aggregate
    short_description: write every task result as JSON lines (ns.mitogen differential tests)
    description:
      - Writes host, task, status and the full result dict of every task result to the file named by NSM_DIFF_CAPTURE.
    requirements:
      - enable in the callbacks_enabled setting and set NSM_DIFF_CAPTURE
"""

ENV_VAR = "NSM_DIFF_CAPTURE"


class CallbackModule(CallbackBase):
    """Append one JSON line per task result (and per loop item) to $NSM_DIFF_CAPTURE."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nsm_capture"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.environ.get(ENV_VAR)
        self._fp = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - kept open for the run
        self._seq = 0
        self._play = ""
        self._items: dict[tuple[str, str], int] = {}

    # -- writing --------------------------------------------------------------
    def _write(self, record: dict[str, Any]) -> None:
        if self._fp is None:
            return
        self._fp.write(json.dumps(record, sort_keys=True, default=repr) + "\n")
        self._fp.flush()

    def _record(self, result: Any, status: str, *, item: bool = False, ignore_errors: bool | None = None) -> None:
        # ansible-core 2.19 made task/host/result public properties; up to 2.18 only the
        # underscored attributes exist
        task = getattr(result, "task", None) or result._task
        host = (getattr(result, "host", None) or result._host).get_name()
        data = result.result if hasattr(result, "result") else result._result
        index = None
        if item:
            key = (host, task._uuid)
            index = self._items.get(key, 0)
            self._items[key] = index + 1
        path = task.get_path() or ""  # "/abs/dir/play.yml:12"
        file_name, _unused, line = path.rpartition(":")
        self._seq += 1
        self._write(
            {
                "kind": "result",
                "seq": self._seq,
                "time": round(time.time(), 3),
                "host": host,
                "play": self._play,
                "task": result.task_name,
                "action": task.action,
                "path": "%s:%s" % (os.path.basename(file_name), line) if path else "",
                "handler": isinstance(task, Handler),
                "item": index,
                "status": status,
                "ignore_errors": ignore_errors,
                "result": dict(data),
            }
        )

    # -- events ---------------------------------------------------------------
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name()

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "failed", ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._record(result, "ok", item=True)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._record(result, "failed", item=True)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped", item=True)

    def v2_runner_retry(self, result: Any) -> None:
        self._record(result, "retry")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        for host in sorted(stats.processed):
            self._write({"kind": "stats", "host": host, "stats": stats.summarize(host)})
        if self._fp is not None:
            self._fp.close()
            self._fp = None
