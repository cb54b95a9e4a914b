"""The Ansible benchmark's results: one run's numbers, the medians, the ratios, the table rows.

Split from ``benchmarks/ansible.py`` (which runs the playbooks): what a run measured
(``RunResult``), the round trips it recorded (``round_trips_of``, ``round_trips_cell``),
the medians over repetitions (``Summary``), the ratios between variants (``ratios``,
``paired_ratio``) and one workload's table rows and JSON (``measurement``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from benchmarks.harness import WireCount, median_wire
from benchmarks.report import Measurement, fmt_bytes, fmt_ms, fmt_ratio, fmt_s

COLUMNS = (
    "Workload",
    "RTT",
    "Variant",
    "Wall (per task)",
    "Controller CPU",
    "Bytes on the wire (up / down)",
    "Packets",
    "Round trips per task",
)


@dataclass
class RunResult:
    wall_s: float
    cpu_s: float  # ansible-playbook and its children + what it left behind
    tasks_per_host: int
    wire: WireCount  # all the workload's hosts summed
    wire_per_host: Dict[str, WireCount]
    supervise: Dict[str, Any]
    mux_reported_cpu_s: Optional[float]
    recap: Dict[str, Dict[str, int]]
    round_trips: Optional[Dict[str, Any]] = None  # ns.mitogen's runs: round_trips_of()

    def to_json(self) -> Dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "tasks_per_host": self.tasks_per_host,
            "wire": self.wire.to_json(),
            "wire_per_host": {name: [c.total_bytes, c.total_packets] for name, c in self.wire_per_host.items()},
            "playbook_cpu_s": self.supervise["command_cpu_s"],
            "left_behind": self.supervise["orphans"],
            "control_masters_closed": len(self.supervise["control_masters_closed"]),
            "mux_reported_cpu_s": self.mux_reported_cpu_s,
            "recap": self.recap,
            "round_trips": self.round_trips,
        }


def round_trips_of(path: Path) -> Optional[Dict[str, Any]]:
    """The round trips a run recorded (``NS_MITOGEN_ROUND_TRIPS``: a JSON line per task and host).

    ``{"tasks": n, "mean": mean total per task, "by_action": {action: {"tasks", "mean"}}}``;
    None if the run recorded none (a variant that is not ns.mitogen's).
    """
    if not path.exists():
        return None
    totals: Dict[str, List[int]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            totals.setdefault(str(record.get("action") or "?"), []).append(int(record["total"]))
    every = [n for counts in totals.values() for n in counts]
    if not every:
        return None
    return {
        "tasks": len(every),
        "mean": statistics.mean(every),
        "by_action": {a: {"tasks": len(c), "mean": statistics.mean(c)} for a, c in sorted(totals.items())},
    }


def round_trips_cell(trips: Optional[Dict[str, Any]]) -> str:
    """The table's cell: the mean per task, and per task type where there are several."""
    if not trips:
        return ""
    cell = "%.2f" % trips["mean"]
    if len(trips["by_action"]) > 1:
        cell += " (%s)" % ", ".join(
            "%s %.2f" % (action.rpartition(".")[2], t["mean"]) for action, t in trips["by_action"].items()
        )
    return cell


@dataclass
class Summary:
    """Medians over the repeated runs of one workload and variant at one RTT."""

    runs: List[RunResult]

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def cpu_s(self) -> float:
        return statistics.median(r.cpu_s for r in self.runs)

    @property
    def wire(self) -> WireCount:
        return median_wire(r.wire for r in self.runs)

    @property
    def per_task_ms(self) -> float:
        return 1000 * self.wall_s / max(1, self.runs[0].tasks_per_host)

    @property
    def round_trips(self) -> Optional[Dict[str, Any]]:
        """The first run's round trips (the same play counts the same in every run)."""
        return self.runs[0].round_trips if self.runs else None

    def to_json(self) -> Dict[str, Any]:
        return {
            "round_trips": self.round_trips,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "wire": self.wire.to_json(),
            "wall_per_task_ms": self.per_task_ms,
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass
class AnsibleRow:
    workload: str
    rtt_ms: float
    variant: str
    wall: str
    cpu: str
    wire: str
    packets: str
    round_trips: str = ""

    def cells(self) -> List[str]:
        return [
            self.workload,
            "%g ms" % self.rtt_ms,
            self.variant,
            self.wall,
            self.cpu,
            self.wire,
            self.packets,
            self.round_trips,
        ]


def wire_cell(count: WireCount) -> str:
    if count.total_bytes == 0:
        return "0 B"
    return "%s (%s / %s)" % (fmt_bytes(count.total_bytes), fmt_bytes(count.to_host_bytes), fmt_bytes(count.from_host_bytes))


def ratio(a: float, b: float) -> Optional[float]:
    return a / b if b > 0 else None


def ratio_cell(x: Optional[float]) -> str:
    return fmt_ratio(x) if x is not None else "n/a"


RATIOS = (
    # (name, numerator, denominator, what): rows in the table, all in the JSON
    ("vanilla_pipelining ÷ ns.mitogen", "vanilla_pipelining", "ns.mitogen", ("wall", "cpu", "bytes", "packets")),
    ("ns.mitogen ÷ floor", "ns.mitogen", "floor", ("wall", "cpu")),
)


def paired_ratio(a: Sequence[RunResult], b: Sequence[RunResult]) -> Optional[float]:
    """Median over repetitions of a's wall time over b's in the same repetition.

    The two runs of one repetition ran one after the other (``bench_rtt``), so a
    drift in the machine's speed over the cell (a VM's neighbours) mostly cancels
    in each ratio; the ratio of medians compares runs from different moments.
    """
    if len(a) != len(b) or len(a) < 2 or any(r.wall_s <= 0 for r in b):
        return None
    return statistics.median(x.wall_s / y.wall_s for x, y in zip(a, b))


def ratios(summaries: Mapping[str, Summary]) -> Dict[str, Dict[str, Optional[float]]]:
    out: Dict[str, Dict[str, Optional[float]]] = {}
    pairs = [(n, d) for n in summaries for d in summaries if n != d]
    for num, den in pairs:
        a, b = summaries[num], summaries[den]
        out["%s/%s" % (num, den)] = {
            "wall": ratio(a.wall_s, b.wall_s),
            "wall_paired": paired_ratio(a.runs, b.runs),
            "cpu": ratio(a.cpu_s, b.cpu_s),
            "bytes": ratio(a.wire.total_bytes, b.wire.total_bytes),
            "packets": ratio(a.wire.total_packets, b.wire.total_packets),
        }
    return out


def measurement(workload: Any, rtt: float, summaries: Mapping[str, Summary]) -> Measurement:
    """One workload's rows (each variant, then the ratios) and JSON at one RTT (``workload``: a ``benchmarks.ansible.Workload``)."""
    rows: List[AnsibleRow] = []
    for name, s in summaries.items():
        rows.append(
            AnsibleRow(
                workload.label,
                rtt,
                name,
                "%s (%s)" % (fmt_s(s.wall_s), fmt_ms(s.per_task_ms)),
                fmt_s(s.cpu_s),
                wire_cell(s.wire),
                "%d" % s.wire.total_packets,
                round_trips_cell(s.round_trips),
            )
        )
    all_ratios = ratios(summaries)
    for title, num, den, shown in RATIOS:
        r = all_ratios.get("%s/%s" % (num, den))
        if r is None:
            continue
        cells = [ratio_cell(r[k]) if k in shown else "" for k in ("wall", "cpu", "bytes", "packets")]
        if r["wall_paired"] is not None:
            cells[0] += " (paired %s)" % fmt_ratio(r["wall_paired"])
        rows.append(AnsibleRow(workload.label, rtt, "ratio " + title, *cells))
    data = {"workload": workload.name, "hosts": workload.hosts, "variants": {k: s.to_json() for k, s in summaries.items()}}
    data["ratios"] = all_ratios
    return Measurement("%s.%gms" % (workload.name, rtt), workload.doc, rtt, data, list(rows), COLUMNS)
