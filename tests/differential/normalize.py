"""Normalization of captured task results, and the comparison of two runs.

Owns:

* the rule format of `normalize.yml` (`load_rules()` validates it: every rule
  says why it exists);
* `normalize()`, which applies the rules to one result dict;
* `differences()` / `compare()`, which line up two runs' records per host and
  task and report every difference that survives normalization.

Comparison: per host, records are keyed by `record_key()` (file:line, task
name, and handler / loop item / retry marks); a key on one side only is a
difference, and so are, for common keys, status, ignore_errors, handler and
any key path of the normalized result dicts, and the order of the common keys.
Given RunResults, the exit status and each host's recap stats count too.

A rule (one entry of normalize.yml) is one of::

    path: "**.start"            # key path pattern, relative to a result dict
    replace: "<TIME>"           # ... the value becomes this placeholder
    reason: why it differs legitimately

    path: "ansible_facts.ansible_date_time"
    drop: true                  # ... the key is removed
    reason: ...

    regex: "ansible-tmp-[0-9.]+-[0-9]+-[0-9]+"
    replace: "ansible-tmp-<ID>" # substitution on every string value (re.sub)
    path: "**.src"              # optional: only on strings at matching paths
    reason: ...

    path: "**.warnings.*"
    regex: "^Using world-readable"
    drop: true                  # ... drop the strings that match (re.search)
    reason: ...

    path: "**.warnings"
    drop: true
    if_empty: true              # ... drop the key if its value is [] or {}
    reason: ...                 #     (after the other rules applied inside it)

    path: "**.ansible_facts.ansible_interfaces"
    sort: true                  # ... a list compared in sorted order
    reason: ...

plus, on any rule, `variants: [name, ...]`: the rule applies only when one of
the two compared runs is of a listed variant (for differences that belong to a
variant, e.g. pipelining).  Path patterns are dot-separated segments matched
with fnmatch (`*` inside a segment, list indices are decimal segments); a
segment `**` matches any number of segments (including none).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from tests.differential.runner import RunResult

RULES_FILE = Path(__file__).resolve().parent / "normalize.yml"
_RULE_KEYS = {"reason", "path", "regex", "replace", "drop", "if_empty", "sort", "variants"}


class _Absent:
    """Stands for a key, list item or record that one side does not have."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


@dataclass(frozen=True)
class Rule:
    """One normalization rule (see the module docstring)."""

    reason: str
    path: tuple[str, ...] | None = None
    regex: re.Pattern[str] | None = None
    replace: str | None = None
    drop: bool = False
    if_empty: bool = False
    sort: bool = False
    variants: frozenset[str] = frozenset()

    def matches(self, path: Sequence[str]) -> bool:
        """True if this rule's path pattern matches `path` (always True without one)."""
        return self.path is None or _match(self.path, tuple(path))

    def applies_to(self, variants: Iterable[str]) -> bool:
        """True if the rule is in force when comparing runs of these variants."""
        return not self.variants or bool(self.variants & set(variants))


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _match(rest, path[1:])


def parse_rule(entry: Mapping[str, Any], where: str = "rule") -> Rule:
    """Validate one normalize.yml entry and build its Rule; ValueError says what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {entry!r}")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{where}: every rule needs a non-empty `reason:`")
    path, regex, replace = entry.get("path"), entry.get("regex"), entry.get("replace")
    drop, sort = bool(entry.get("drop", False)), bool(entry.get("sort", False))
    if_empty = bool(entry.get("if_empty", False))
    if path is None and regex is None:
        raise ValueError(f"{where}: needs `path:` or `regex:`")
    if sort and (path is None or regex is not None or replace is not None or drop):
        raise ValueError(f"{where}: `sort: true` takes a path only")
    if drop and replace is not None:
        raise ValueError(f"{where}: `drop: true` and `replace:` exclude each other")
    if if_empty and (not drop or path is None or regex is not None):
        raise ValueError(f"{where}: `if_empty: true` goes with `drop: true` and a path only")
    if not (drop or sort) and not isinstance(replace, str):
        raise ValueError(f"{where}: needs `replace:` (a placeholder or re.sub template), `drop: true` or `sort: true`")
    variants = entry.get("variants") or []
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise ValueError(f"{where}: `variants:` must be a list of variant names")
    return Rule(
        reason=reason.strip(),
        path=tuple(str(path).split(".")) if path is not None else None,
        regex=re.compile(regex) if regex is not None else None,
        replace=replace,
        drop=drop,
        if_empty=if_empty,
        sort=sort,
        variants=frozenset(variants),
    )


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    """Every rule of a normalize.yml (default: the checked-in one), validated."""
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("rules") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a top-level `rules:` list")
    return [parse_rule(entry, f"{path.name} rule {i + 1}") for i, entry in enumerate(entries)]


def normalize(result: Any, rules: Sequence[Rule]) -> Any:
    """A normalized deep copy of `result` (rules as given: filter them by variant first)."""
    return _walk(copy.deepcopy(result), (), rules)


def _dropped(value: Any, path: tuple[str, ...], rules: Sequence[Rule]) -> bool:
    """True if an unconditional drop rule (path, or path + regex on a string) removes `value`."""
    return any(
        r.drop
        and not r.if_empty
        and r.matches(path)
        and (r.regex is None or (isinstance(value, str) and r.regex.search(value) is not None))
        for r in rules
    )


def _walk(value: Any, path: tuple[str, ...], rules: Sequence[Rule]) -> Any:
    for rule in rules:
        if rule.replace is not None and rule.regex is None and rule.matches(path):
            return rule.replace  # placeholder for the whole value, whatever its type
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            child_path = (*path, str(key))
            if _dropped(child, child_path, rules):
                continue
            new = _walk(child, child_path, rules)
            if new in ([], {}) and any(r.if_empty and r.matches(child_path) for r in rules):
                continue
            out[key] = new
        return out
    if isinstance(value, list):
        items = [_walk(c, (*path, str(i)), rules) for i, c in enumerate(value) if not _dropped(c, (*path, str(i)), rules)]
        if any(r.sort and r.matches(path) for r in rules):
            items.sort(key=lambda c: json.dumps(c, sort_keys=True, default=str))
        return items
    if isinstance(value, str):
        for rule in rules:
            if rule.regex is not None and rule.replace is not None and rule.matches(path):
                value = rule.regex.sub(rule.replace, value)
    return value


# -- comparison -------------------------------------------------------------------

Records = Sequence[Mapping[str, Any]]
RunLike = Union[RunResult, Records]


@dataclass(frozen=True)
class Difference:
    """One difference between two runs: where, and both values."""

    host: str
    task: str
    path: str
    a: Any
    b: Any
    labels: tuple[str, str] = ("a", "b")

    def __str__(self) -> str:
        la, lb = self.labels
        return f"{self.host} | {self.task} | {self.path}: {la}={_show(self.a)} {lb}={_show(self.b)}"


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 15] + "...(%d chars)" % len(text)


def record_key(record: Mapping[str, Any]) -> str:
    """Stable name of a record within one host's run: file:line, task name, handler/item/retry."""
    key = f"{record.get('path', '')} {record.get('task', '')!r}"
    if record.get("handler"):
        key += " [handler]"
    if record.get("item") is not None:
        key += f" [item {record['item']}]"
    if record.get("status") == "retry":
        key += " [retry]"
    return key


def _by_host(records: Records) -> dict[str, dict[str, Mapping[str, Any]]]:
    """{host: {key: record}} in execution order; repeated keys get #2, #3, ..."""
    hosts: dict[str, dict[str, Mapping[str, Any]]] = {}
    for record in records:
        keyed = hosts.setdefault(str(record["host"]), {})
        key = base = record_key(record)
        n = 1
        while key in keyed:
            n += 1
            key = f"{base} #{n}"
        keyed[key] = record
    return hosts


def _diff_values(a: Any, b: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}"
            if key not in a or key not in b:
                out.append((sub, a.get(key, ABSENT), b.get(key, ABSENT)))
            else:
                _diff_values(a[key], b[key], sub, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            sub = f"{path}[{i}]"
            if i >= len(a) or i >= len(b):
                out.append((sub, a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT))
            else:
                _diff_values(a[i], b[i], sub, out)
    elif type(a) is not type(b) or a != b:
        out.append((path, a, b))


def _parts(run: RunLike) -> tuple[Records, str | None, int | None, Mapping[str, Any] | None]:
    if isinstance(run, RunResult):
        return run.records, run.variant, run.rc, run.stats
    return run, None, None, None


def differences(
    run_a: RunLike,
    run_b: RunLike,
    *,
    rules: Sequence[Rule] | None = None,
    labels: tuple[str, str] | None = None,
) -> list[Difference]:
    """Every difference between two runs after normalization.

    run_a/run_b: RunResults (then the exit status and the per-host stats are
    compared too, rules are filtered by the two variants, and the labels
    default to the variant names) or plain lists of capture records.
    """
    records_a, variant_a, rc_a, stats_a = _parts(run_a)
    records_b, variant_b, rc_b, stats_b = _parts(run_b)
    if labels is None:
        labels = (variant_a or "a", variant_b or "b")
        if labels[0] == labels[1]:
            labels = (labels[0] + "#1", labels[1] + "#2")
    in_force = [
        r
        for r in (load_rules() if rules is None else rules)
        if r.applies_to({v for v in (variant_a, variant_b) if v is not None})
    ]
    diffs: list[Difference] = []

    def add(host: str, task: str, path: str, a: Any, b: Any) -> None:
        diffs.append(Difference(host, task, path, a, b, labels))

    if rc_a is not None and rc_b is not None and rc_a != rc_b:
        add("*", "ansible-playbook", "rc", rc_a, rc_b)
    by_host_a, by_host_b = _by_host(records_a), _by_host(records_b)
    for host in sorted(set(by_host_a) | set(by_host_b)):
        tasks_a, tasks_b = by_host_a.get(host, {}), by_host_b.get(host, {})
        for key in [*tasks_a, *(k for k in tasks_b if k not in tasks_a)]:
            if key not in tasks_a or key not in tasks_b:
                rec = tasks_a.get(key) or tasks_b[key]
                present = f"ran ({rec.get('status')})"
                add(host, key, "record", present if key in tasks_a else ABSENT, present if key in tasks_b else ABSENT)
                continue
            ra, rb = tasks_a[key], tasks_b[key]
            found: list[tuple[str, Any, Any]] = []
            for field in ("status", "ignore_errors", "handler"):
                _diff_values(ra.get(field), rb.get(field), field, found)
            _diff_values(normalize(ra.get("result", {}), in_force), normalize(rb.get("result", {}), in_force), "result", found)
            for path, va, vb in found:
                add(host, key, path, va, vb)
        common_a = [k for k in tasks_a if k in tasks_b]
        common_b = [k for k in tasks_b if k in tasks_a]
        if common_a != common_b:
            i = next(i for i, (x, y) in enumerate(zip(common_a, common_b)) if x != y)
            add(host, "(task order)", f"position {i}", common_a[i], common_b[i])
        if stats_a is not None and stats_b is not None:
            _stats: list[tuple[str, Any, Any]] = []
            _diff_values(stats_a.get(host, {}), stats_b.get(host, {}), "stats", _stats)
            for path, va, vb in _stats:
                add(host, "(play recap)", path, va, vb)
    return diffs


def compare(run_a: RunLike, run_b: RunLike, **kwargs: Any) -> list[str]:
    """Human-readable differences between two runs ("host | task | key path: a=... b=...")."""
    return [str(d) for d in differences(run_a, run_b, **kwargs)]
