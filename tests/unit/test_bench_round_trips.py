"""The Ansible benchmark's round-trip report (``benchmarks/ansible.py``), read from a
hand-made ``NS_MITOGEN_ROUND_TRIPS`` file as ``_roundtrips.report`` writes it."""

from __future__ import annotations

import json

from benchmarks.ansible_results import COLUMNS, AnsibleRow, RunResult, Summary, round_trips_cell, round_trips_of
from benchmarks.harness import WireCount


def _write(path, records):
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return path


def _record(action, total, host="h1"):
    return {"host": host, "action": action, "trips": {"ssh:u@h": total}, "target_requests": {}, "total": total}


def test_round_trips_per_task_and_per_task_type(tmp_path):
    path = _write(
        tmp_path / "trips.jsonl",
        [_record("ansible.builtin.command", 1), _record("ansible.builtin.command", 1, "h2"), _record("ansible.builtin.copy", 2)]
        + [_record("ansible.builtin.copy", 3, "h2")],
    )
    trips = round_trips_of(path)
    assert trips == {
        "tasks": 4,
        "mean": 1.75,
        "by_action": {"ansible.builtin.command": {"tasks": 2, "mean": 1}, "ansible.builtin.copy": {"tasks": 2, "mean": 2.5}},
    }
    assert round_trips_cell(trips) == "1.75 (command 1.00, copy 2.50)"


def test_one_task_type_and_no_file(tmp_path):
    trips = round_trips_of(_write(tmp_path / "t.jsonl", [_record("ansible.builtin.command", 1)] * 3 + [{"total": 1}]))
    assert trips is not None and trips["mean"] == 1 and set(trips["by_action"]) == {"ansible.builtin.command", "?"}
    assert round_trips_of(_write(tmp_path / "one.jsonl", [_record("ansible.builtin.command", 1)])) == {
        "tasks": 1,
        "mean": 1,
        "by_action": {"ansible.builtin.command": {"tasks": 1, "mean": 1}},
    }
    assert round_trips_cell(round_trips_of(tmp_path / "one.jsonl")) == "1.00"
    assert round_trips_of(tmp_path / "absent.jsonl") is None  # vanilla's runs write none
    assert round_trips_cell(None) == ""


def test_the_table_has_a_round_trips_column(tmp_path):
    trips = round_trips_of(_write(tmp_path / "t.jsonl", [_record("ansible.builtin.command", 1)]))
    run = RunResult(
        1.0,
        1.0,
        1,
        WireCount(0, 0, 0, 0),
        {},
        {"command_cpu_s": 1.0, "orphans": [], "control_masters_closed": []},
        None,
        {},
        trips,
    )
    summary = Summary([run])
    assert summary.to_json()["round_trips"] == trips
    row = AnsibleRow("w", 20, "ns.mitogen", "", "", "", "", round_trips_cell(summary.round_trips))
    assert dict(zip(COLUMNS, row.cells()))["Round trips per task"] == "1.00"
