"""Differential tests: every playbook gives the same results under every variant.

For each playbook in tests/differential/playbooks/ and each available variant
other than the baseline (vanilla Ansible, pipelining off), the playbook runs
under the baseline and under the variant (targets reset before each run), and
the two captured result sets must be equal after normalization
(tests/differential/normalize.yml).  Every run must also pass its own checks:
the expected exit status, its `assert` tasks, no leftover processes, and none
of its declared secrets in the capture or the log.

Variants whose plugins do not resolve yet are skipped with the reason.  A
rerun of the baseline must match the baseline (the rules cover run-to-run
noise), and the self-tests at the end prove the comparator reports a changed
value (and only that) and ignores what the rules mask.

Select a variant with -k, e.g. `-k vanilla_pipelining`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.differential import normalize, runner
from tests.differential.runner import RunResult
from tests.testbed import Testbed

pytestmark = pytest.mark.testbed

PLAYBOOKS = runner.playbooks()
COMPARED = [name for name in runner.VARIANTS if name != runner.BASELINE]
#: Our connection under the built-in free and host_pinned strategies (nothing of our
#: strategy loaded): compared in CI on this slice, where their run loops meet what the
#: connection does alone (per-host order, delegation, failures, handlers and loops,
#: become; async passed too, left out for CI's time); NSM_FULL_MATRIX=1 compares them
#: on every playbook. So is the built-in linear with the ns.mitogen.preload callback.
#: The built-in linear with our connection alone is compared on every playbook.
BUILTIN_RUN_LOOPS = ("builtin_free_mitogen_ssh", "builtin_host_pinned_mitogen_ssh", "builtin_linear_mitogen_ssh_preload")
BUILTIN_RUN_LOOP_SLICE = ("command_shell", "become", "delegation", "errors", "loops_handlers")


def _cases() -> list:
    full = os.environ.get("NSM_FULL_MATRIX")
    return [
        pytest.param(playbook, variant, id=f"{playbook.stem}-{variant}")
        for playbook in PLAYBOOKS
        for variant in COMPARED
        if (variant not in BUILTIN_RUN_LOOPS or full or playbook.stem in BUILTIN_RUN_LOOP_SLICE)
        and (playbook.stem not in runner.NARROW_PLAYBOOKS or full or variant in runner.NARROW_VARIANTS)
    ]


def run_problems(result: RunResult) -> str | None:
    """Why a run failed its own checks (exit status, asserts, leftovers, secrets), or None."""
    meta = runner.playbook_meta(result.playbook)
    problems = []
    if result.rc != meta.rc:
        problems.append(f"exit status {result.rc}, expected {meta.rc}")
    for record in result.records:
        if record.get("action") in ("assert", "ansible.builtin.assert") and record["status"] != "ok":
            msg = record["result"].get("msg", "")
            problems.append(f"{record['host']}: self-check {record['path']} {record['task']!r} {record['status']}: {msg}")
    if result.leftovers:
        problems.append(f"processes outlived the run (killed): {result.leftovers}")
    texts = {"capture": result.capture_path.read_text(errors="replace"), "log": result.log()}
    for secret in meta.secrets:
        problems += [f"no_log secret {secret!r} appears in the {where}" for where, text in texts.items() if secret in text]
    if not problems:
        return None
    return f"{result.describe()}:\n  " + "\n  ".join(problems) + f"\n--- log tail ---\n{result.log_tail()}"


def check_run(result: RunResult) -> None:
    """Fail the test unless the run passed its own checks."""
    problems = run_problems(result)
    if problems:
        pytest.fail(problems, pytrace=False)


@pytest.fixture(scope="module")
def testbed_for(testbed: Testbed, request: pytest.FixtureRequest) -> Iterator[Callable[[Path], Testbed]]:
    """The testbed a playbook runs on: the session's, or (nsm_diff.hosts > 2) a bigger one.

    The bigger ones are started here, for the selected tests only, so that their
    processes exist before any test's leak check starts.
    """
    bigger: dict[int, Testbed] = {}
    selected = {item.callspec.params.get("playbook") for item in request.session.items if hasattr(item, "callspec")}
    try:
        for count in sorted({runner.playbook_meta(p).hosts for p in selected if isinstance(p, Path)}):
            if count > len(runner.HOSTS):
                bigger[count] = Testbed(hosts=count).start()

        def get(playbook: Path) -> Testbed:
            count = runner.playbook_meta(playbook).hosts
            return testbed if count <= len(runner.HOSTS) else bigger[count]

        yield get
    finally:
        for tb in bigger.values():
            tb.close()


class BaselineRuns:
    """Checked baseline runs: each (playbook, ansible-core) once per test module, a failure too."""

    def __init__(self, testbed_for: Callable[[Path], Testbed], work: Path) -> None:
        self.testbed_for = testbed_for
        self.work = work
        self.runs: dict[tuple[Path, Path | None], RunResult | str] = {}

    def get(self, playbook: Path, bin_dir: Path | None = None, label: str = "") -> RunResult:
        """The baseline run of `playbook` (with the ansible-core in `bin_dir`, default ours)."""
        key = (playbook, bin_dir)
        if key not in self.runs:
            result = runner.run_playbook(self.testbed_for(playbook), playbook, runner.BASELINE, self.work, bin_dir=bin_dir)
            self.runs[key] = run_problems(result) or result
        got = self.runs[key]
        if isinstance(got, str):
            pytest.fail(f"the baseline run failed{label}: {got}", pytrace=False)
        return got

    def close(self) -> None:
        runner.reset_targets(self.testbed_for(runner.PLAYBOOK_DIR / "facts.yml"))


@pytest.fixture(scope="module")
def baseline(
    testbed_for: Callable[[Path], Testbed], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Path], RunResult]]:
    """The checked baseline run of a playbook; run once per module (a failure too)."""
    runs = BaselineRuns(testbed_for, tmp_path_factory.mktemp("differential-baseline"))
    yield runs.get
    runs.close()


@pytest.mark.parametrize(("playbook", "variant"), _cases())
def test_same_results(
    playbook: Path,
    variant: str,
    baseline: Callable[[Path], RunResult],
    testbed_for: Callable[[Path], Testbed],
    tmp_path: Path,
) -> None:
    reason = runner.unavailable_reason(variant)
    if reason is not None:  # the plugins live in this repository: a variant that does not load is a failure
        pytest.fail(reason)
    expected = baseline(playbook)
    actual = runner.run_playbook(testbed_for(playbook), playbook, variant, tmp_path)
    check_run(actual)
    diffs = normalize.compare(expected, actual)
    if diffs:
        pytest.fail(
            f"{playbook.name}: {len(diffs)} difference(s) between {expected.variant} and {variant} after normalization "
            f"(logs: {expected.log_path}, {actual.log_path}):\n  " + "\n  ".join(diffs),
            pytrace=False,
        )


def test_baseline_rerun_matches(baseline: Callable[[Path], RunResult], testbed: Testbed, tmp_path: Path) -> None:
    """Run-to-run noise of the baseline itself is all normalized (facts are the noisiest case)."""
    playbook = runner.PLAYBOOK_DIR / "facts.yml"
    first = baseline(playbook)
    again = runner.run_playbook(testbed, playbook, runner.BASELINE, tmp_path)
    check_run(again)
    assert normalize.compare(first, again) == []


# -- self-tests of the comparator ---------------------------------------------------

SELF_TEST_PLAYBOOK = runner.PLAYBOOK_DIR / "command_shell.yml"
SELF_TEST_TASK = "shell with stdout, stderr and rc"


def _record(records: list[dict], host: str, task: str) -> dict:
    return next(r for r in records if r["host"] == host and r["task"] == task and r["item"] is None)


def test_comparator_reports_exactly_a_changed_value(baseline: Callable[[Path], RunResult]) -> None:
    real = baseline(SELF_TEST_PLAYBOOK)
    assert normalize.compare(real, real) == []
    changed = copy.deepcopy(real.records)
    _record(changed, "h2", SELF_TEST_TASK)["result"]["stdout"] = "tampered"
    diffs = normalize.differences(real.records, changed, labels=("real", "tampered"))
    assert [(d.host, d.path, d.b) for d in diffs] == [("h2", "result.stdout", "tampered")]
    assert SELF_TEST_TASK in diffs[0].task
    assert normalize.compare(real.records, changed, labels=("real", "tampered")) == [
        f"h2 | {diffs[0].task} | result.stdout: real='to stdout\\nno newline' tampered='tampered'"
    ]


def test_comparator_reports_status_and_missing_records(baseline: Callable[[Path], RunResult]) -> None:
    real = baseline(SELF_TEST_PLAYBOOK)
    changed = copy.deepcopy(real.records)
    _record(changed, "h1", SELF_TEST_TASK)["status"] = "failed"
    changed.remove(_record(changed, "h2", "command with argv"))
    got = {(d.host, d.path, d.a, d.b) for d in normalize.differences(real.records, changed)}
    assert got == {("h1", "status", "ok", "failed"), ("h2", "record", "ran (ok)", normalize.ABSENT)}


def test_comparator_ignores_what_the_rules_mask(baseline: Callable[[Path], RunResult]) -> None:
    real = baseline(SELF_TEST_PLAYBOOK)
    changed = copy.deepcopy(real.records)
    result = _record(changed, "h1", SELF_TEST_TASK)["result"]
    result["start"], result["delta"] = "1999-01-01 00:00:00.000000", "9:99:99.999999"
    assert normalize.compare(real.records, changed) == []
    assert normalize.compare(real.records, changed, rules=[]) != []


# -- the rules themselves (no testbed needed) -----------------------------------------


def test_every_rule_has_a_reason() -> None:
    rules = normalize.load_rules()
    assert rules and all(rule.reason for rule in rules)
    with pytest.raises(ValueError, match="reason"):
        normalize.parse_rule({"path": "**.start", "replace": "<TIME>"})
    with pytest.raises(ValueError, match="unknown keys"):
        normalize.parse_rule({"path": "x", "replace": "y", "reason": "z", "typo": 1})


def test_rule_kinds() -> None:
    rules = [
        normalize.parse_rule({"path": "a.*.t", "replace": "<T>", "reason": "placeholder"}),
        normalize.parse_rule({"path": "**.gone", "drop": True, "reason": "drop"}),
        normalize.parse_rule({"path": "**.w.*", "regex": "^noise", "drop": True, "reason": "drop matching items"}),
        normalize.parse_rule({"path": "x.w", "drop": True, "if_empty": True, "reason": "drop emptied"}),
        normalize.parse_rule({"path": "s", "sort": True, "reason": "sort"}),
        normalize.parse_rule({"regex": "id-[0-9]+", "replace": "id-<N>", "reason": "regex everywhere"}),
    ]
    value = {
        "a": [{"t": 1, "u": "id-42"}, {"t": 2}],
        "b": {"gone": 1, "kept": 2},
        "w": ["noise 1", "signal"],
        "x": {"w": ["noise only"], "v": []},
        "s": [3, 1, 2],
    }
    assert normalize.normalize(value, rules) == {
        "a": [{"t": "<T>", "u": "id-<N>"}, {"t": "<T>"}],
        "b": {"kept": 2},
        "w": ["signal"],
        "x": {"v": []},
        "s": [1, 2, 3],
    }


def test_rules_scoped_to_variants() -> None:
    rule = normalize.parse_rule({"path": "v", "replace": "<V>", "reason": "only pipelining", "variants": ["vanilla_pipelining"]})
    rec_a: List[Dict[str, Any]] = [{"host": "h1", "task": "t", "path": "p:1", "status": "ok", "item": None, "result": {"v": 1}}]
    rec_b = copy.deepcopy(rec_a)
    rec_b[0]["result"]["v"] = 2
    assert normalize.compare(rec_a, rec_b, rules=[rule]) != []  # plain records carry no variant
    runs = [
        RunResult(name, Path("p.yml"), 0, recs, {}, Path("."), Path("log"), Path("capture"))
        for name, recs in (("vanilla", rec_a), ("vanilla_pipelining", rec_b), ("mitogen_linear", rec_b))
    ]
    assert normalize.compare(runs[0], runs[1], rules=[rule]) == []
    assert normalize.compare(runs[0], runs[2], rules=[rule]) != []


def test_run_checks_catch_leaks_and_failed_self_checks(tmp_path: Path) -> None:
    playbook = runner.PLAYBOOK_DIR / "no_log.yml"
    (secret,) = runner.playbook_meta(playbook).secrets
    failed_assert: Dict[str, Any] = {"host": "h1", "task": "check", "path": "no_log.yml:9", "action": "ansible.builtin.assert"}
    failed_assert.update(status="failed", item=None, result={"msg": "Assertion failed"})
    capture, log = tmp_path / "capture.jsonl", tmp_path / "ansible.log"
    capture.write_text(f'{{"leaked": "{secret}"}}\n')
    log.write_text("nothing to see\n")
    result = RunResult("vanilla", playbook, 2, [failed_assert], {}, tmp_path, log, capture, leftovers=["sleep 60"])
    problems = run_problems(result) or ""
    assert "exit status 2, expected 0" in problems
    assert "self-check no_log.yml:9 'check' failed: Assertion failed" in problems
    assert "processes outlived the run (killed): ['sleep 60']" in problems
    assert f"no_log secret {secret!r} appears in the capture" in problems
    assert "appears in the log" not in problems


def test_playbook_settings(tmp_path: Path) -> None:
    playbook = tmp_path / "case.yml"
    playbook.write_text("- hosts: all\n  vars:\n    nsm_diff: {hosts: 4, vault_password: pw, rc: 2}\n  tasks: []\n")
    meta = runner.playbook_meta(playbook)
    assert (meta.hosts, meta.vault_password, meta.rc, meta.secrets) == (4, "pw", 2, ())
    assert meta.host_names() == ("h1", "h2", "h3", "h4")
    assert runner.playbook_meta(runner.PLAYBOOK_DIR / "facts.yml").host_names() == runner.HOSTS
    playbook.write_text("- hosts: all\n  vars:\n    nsm_diff: {hosts: 0}\n")
    with pytest.raises(ValueError, match="at least 1"):
        runner.playbook_meta(playbook)
    playbook.write_text("- hosts: all\n  vars:\n    nsm_diff: {host: 3}\n")
    with pytest.raises(ValueError, match="unknown nsm_diff settings"):
        runner.playbook_meta(playbook)
