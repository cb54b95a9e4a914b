"""ns.mitogen under every supported ansible-core release and every target Python.

The rest of the suite runs ansible-core 2.19 (the one in .venv).  This module runs
the other releases from their own virtualenvs, `.venvs/core-X.Y` (made by
scripts/setup; a release without one is skipped with the reason):

- 2.16 and 2.21, the oldest and the newest: every differential playbook under
  vanilla and under ns.mitogen.linear, results compared after normalization, as
  tests/integration/test_differential.py does for 2.19; ns.mitogen.ssh under the
  built-in linear on a slice (`CONNECTION_SLICE`; `NSM_FULL_MATRIX=1`: every playbook);
- 2.17, 2.18, 2.20: every differential playbook under ns.mitogen.linear passes
  its own checks (exit status, asserts, no leftover process, no leaked secret);
- 2.16 and 2.17 on the old target Pythons only they support (3.6 and 3.7 under
  2.16, 3.7 under 2.17; RHEL 8's platform-python is 3.6): every differential
  playbook that does not choose its own interpreter passes its own checks there,
  and gives vanilla's results under 2.16 on 3.6;
- every release, 2.19 too: `playbooks/target_python.yml` through ns.mitogen with
  `ansible_python_interpreter` set to each target Python the release supports and
  this machine has (the modules must run in that Python); each older one must be
  refused: by ns.mitogen's bootstrap, naming the interpreter, where the core cannot
  run it (2.7), else as vanilla refuses it (the release's own check, or the
  SyntaxError its modules raise there);
- every release: `ansible-doc` renders the connection and strategy plugins.

- Python 3.6 and 3.7 targets where a release still supports them (3.6 and 3.7 under
  2.16, 3.7 under 2.17): a slice of the differential playbooks (`OLD_TARGET_SLICE`)
  passes its own checks, compared with vanilla for 3.6 under 2.16;
  `NSM_FULL_MATRIX=1` runs every playbook there.

Select a release with -k, e.g. `-k 2.16`.  The whole differential suite can also
run under one release: `NSM_ANSIBLE_VENV=.venvs/core-2.16 pytest
tests/integration/test_differential.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.differential import normalize, runner
from tests.differential.runner import RunResult
from tests.integration import test_differential
from tests.integration.test_differential import BaselineRuns, check_run
from tests.testbed import Testbed
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parent.parent.parent
#: The release .venv runs (its ansible-playbook sits next to sys.executable).
MAIN = "2.19"
#: Every other supported release, each in .venvs/core-X.Y.
OTHERS = ("2.16", "2.17", "2.18", "2.20", "2.21")
RELEASES = tuple(sorted((MAIN, *OTHERS), key=lambda v: tuple(map(int, v.split(".")))))
#: Releases compared with vanilla in full; the others must pass their own checks.
COMPARED_RELEASES = ("2.16", "2.21")
OWN_CHECK_RELEASES = ("2.17", "2.18", "2.20")
#: ns.mitogen variants compared with vanilla on those releases: our strategy and our
#: connection under the built-in one. (free and host_pinned add only their run loop,
#: which is ansible-core's own; they are compared on the main release in
#: test_differential.py. Keeping CI within its time is the reason.)
MITOGEN_VARIANTS = ["mitogen_linear", "builtin_linear_mitogen_ssh"]
PLAYBOOKS = [p for p in runner.playbooks() if os.environ.get("NSM_FULL_MATRIX") or p.stem not in runner.NARROW_PLAYBOOKS]
#: In CI, our connection under the built-in strategy is compared there on this slice
#: (where the connection, not the strategy, decides: become and its passwords, errors,
#: files, module styles, delegation); our strategy on every playbook. The main release
#: compares every variant on every playbook (test_differential.py); NSM_FULL_MATRIX=1
#: does here too.
CONNECTION_SLICE = ("become", "become_custom", "become_su", "passwords", "errors", "files", "module_styles", "delegation")


def _compared_cases() -> list:
    return [
        pytest.param(release, playbook, variant, id=f"{release}-{playbook.stem}-{variant}")
        for release in COMPARED_RELEASES
        for playbook in PLAYBOOKS
        for variant in MITOGEN_VARIANTS
        if variant == "mitogen_linear" or os.environ.get("NSM_FULL_MATRIX") or playbook.stem in CONNECTION_SLICE
    ]


TARGET_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "target_python.yml"
#: The oldest target Python of ns.mitogen itself (its core's bootstrap checks it).
MITOGEN_MIN_PYTHON = (3, 6)
#: The oldest target Python of an ansible-core release where it is newer than ns.mitogen's
#: (2.16's modules run on 3.6 too, and on 2.7, which the core cannot).
CORE_MIN_PYTHON = {"2.17": (3, 7), "2.18": (3, 8), "2.19": (3, 8), "2.20": (3, 9), "2.21": (3, 9)}
#: (release, target Python) pairs older than the main release's modules support: the
#: differential playbooks run there too.
OLD_TARGETS = [("2.16", "3.6"), ("2.16", "3.7"), ("2.17", "3.7")]
#: The oldest of them (RHEL 8's platform-python under the oldest release) is compared
#: with vanilla too; the others pass their own checks.
COMPARED_OLD_TARGET = ("2.16", "3.6")
#: Differential playbooks that choose their own interpreter (discovery, a missing one).
OWN_INTERPRETER_PLAYBOOKS = ("discovery.yml", "no_python.yml")
#: The old target Pythons run these main playbooks in CI (module styles, commands, files,
#: become, facts, errors, loops, serialization, a collection's module_utils), a slice
#: that keeps CI within its time; NSM_FULL_MATRIX=1 runs every playbook there.
OLD_TARGET_SLICE = (
    "become",
    "command_shell",
    "errors",
    "facts",
    "files",
    "loops_handlers",
    "module_styles",
    "module_utils_custom",
    "serialization",
)
OLD_TARGET_PLAYBOOKS = [
    p
    for p in PLAYBOOKS
    if p.name not in OWN_INTERPRETER_PLAYBOOKS and (os.environ.get("NSM_FULL_MATRIX") or p.stem in OLD_TARGET_SLICE)
]
#: The fixture giving the testbed a playbook needs (a bigger one for nsm_diff.hosts > 2).
testbed_for = test_differential.testbed_for
PLUGIN_DOCS = [
    ("connection", "ns.mitogen.ssh"),
    ("connection", "ns.mitogen.local"),
    ("strategy", "ns.mitogen.linear"),
    ("module", "ns.mitogen.mitogen_get_stack"),
]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def bin_dir(release: str) -> Path:
    """The bin directory of `release`'s ansible-core; skips the test if it is not installed."""
    if release == MAIN:
        return Path(sys.executable).parent
    venv = REPO / ".venvs" / f"core-{release}"
    try:
        return runner.ansible_bin_dir(venv)
    except ValueError:
        unavailable(
            f"ansible-core {release} is not installed in {venv} (scripts/setup makes it when a suitable pyenv Python exists)"
        )


def min_python(release: str) -> tuple[int, int]:
    return max(MITOGEN_MIN_PYTHON, CORE_MIN_PYTHON.get(release, MITOGEN_MIN_PYTHON))


#: Releases whose every target Python is run; the others run their oldest and newest.
ALL_PYTHONS_RELEASES = ("2.16", MAIN, "2.21")


def _python_cases() -> list:
    """(release, target Python "X.Y", supported): every pyenv Python under the oldest,
    main and newest releases; the oldest supported and the newest under the others."""
    cases = []
    for release in RELEASES:
        versions = sorted(pythons(), key=_key)
        supported = [v for v in versions if _key(v) >= min_python(release)]
        if release not in ALL_PYTHONS_RELEASES:
            versions = sorted({supported[0], supported[-1]}, key=_key) if supported else []
        for version in versions:
            ok = _key(version) >= min_python(release)
            cases.append(pytest.param(release, version, ok, id=f"{release}-py{version}" + ("" if ok else "-refused")))
    return cases


# -- the differential playbooks -----------------------------------------------------------


@pytest.fixture(scope="module")
def baselines(
    testbed_for: Callable[[Path], Testbed], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, Path], RunResult]]:
    """The checked vanilla run of a playbook under a release; run once (a failure too)."""
    runs = BaselineRuns(testbed_for, tmp_path_factory.mktemp("versions-baseline"))
    yield lambda release, playbook: runs.get(playbook, bin_dir(release), f" under ansible-core {release}")
    runs.close()


@pytest.mark.parametrize("release, playbook, variant", _compared_cases())
def test_same_results(
    release: str,
    playbook: Path,
    variant: str,
    baselines: Callable[[str, Path], RunResult],
    testbed_for: Callable[[Path], Testbed],
    tmp_path: Path,
) -> None:
    bins = bin_dir(release)
    reason = runner.unavailable_reason(variant, bins)
    if reason is not None:
        pytest.fail(f"ansible-core {release}: {reason}")
    expected = baselines(release, playbook)
    actual = runner.run_playbook(testbed_for(playbook), playbook, variant, tmp_path, bin_dir=bins)
    check_run(actual)
    diffs = normalize.compare(expected, actual)
    if diffs:
        pytest.fail(
            f"ansible-core {release}, {playbook.name}: {len(diffs)} difference(s) between vanilla and {variant} "
            f"(logs: {expected.log_path}, {actual.log_path}):\n  " + "\n  ".join(diffs),
            pytrace=False,
        )


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("release", OWN_CHECK_RELEASES)
def test_own_checks(release: str, playbook: Path, testbed_for: Callable[[Path], Testbed], tmp_path: Path) -> None:
    result = runner.run_playbook(testbed_for(playbook), playbook, "mitogen_linear", tmp_path, bin_dir=bin_dir(release))
    check_run(result)
    assert result.records, f"{result.describe()}: no task result was captured"


@pytest.mark.parametrize("playbook", OLD_TARGET_PLAYBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize(("release", "python"), OLD_TARGETS, ids=[f"{r}-py{v}" for r, v in OLD_TARGETS])
def test_own_checks_on_old_target_pythons(
    release: str, python: str, playbook: Path, testbed_for: Callable[[Path], Testbed], tmp_path: Path
) -> None:
    assert _key(python) >= min_python(release)
    interpreter = pythons().get(python)
    if interpreter is None:
        unavailable(f"needs pyenv's Python {python}")
    result = runner.run_playbook(
        testbed_for(playbook), playbook, "mitogen_linear", tmp_path, bin_dir=bin_dir(release), python=interpreter
    )
    check_run(result)
    assert result.records, f"{result.describe()}: no task result was captured"
    if (release, python) == COMPARED_OLD_TARGET:
        expected = runner.run_playbook(
            testbed_for(playbook), playbook, "vanilla", tmp_path, bin_dir=bin_dir(release), python=interpreter
        )
        diffs = normalize.compare(expected, result)
        if diffs:
            pytest.fail(
                f"ansible-core {release}, Python {python}, {playbook.name}: {len(diffs)} difference(s) between vanilla "
                f"and mitogen_linear (logs: {expected.log_path}, {result.log_path}):\n  " + "\n  ".join(diffs),
                pytrace=False,
            )


# -- target Pythons --------------------------------------------------------------------------


@pytest.mark.parametrize(("release", "python", "supported"), _python_cases())
def test_target_python(release: str, python: str, supported: bool, testbed: Testbed, tmp_path: Path) -> None:
    interpreter = pythons()[python]
    result = runner.run_playbook(
        testbed, TARGET_PLAYBOOK, "mitogen_linear", tmp_path, bin_dir=bin_dir(release), python=interpreter
    )
    if supported:
        check_run(result)
        for host in runner.HOSTS:
            facts = next(r for r in result.records if r["host"] == host and r["task"] == "gather the python facts")
            got = facts["result"]["ansible_facts"]["ansible_python"]
            assert (got["executable"], got["version_info"][:2]) == (interpreter, list(map(int, python.split(".")))), got
        return
    # Older than ns.mitogen supports: refused by its bootstrap, which names the interpreter.
    # Else older than the release supports: the interpreter starts (raw and the like work,
    # as under vanilla) and the release's modules refuse it as under vanilla.
    assert result.rc != 0, f"{result.describe()}: Python {python} was accepted"
    full_version = subprocess.run(
        [interpreter, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    vanilla = None
    if _key(python) >= MITOGEN_MIN_PYTHON:
        vanilla = runner.run_playbook(testbed, TARGET_PLAYBOOK, "vanilla", tmp_path, bin_dir=bin_dir(release), python=interpreter)
    for host in runner.HOSTS:
        first = next((r for r in result.records if r["host"] == host), None)
        assert first is not None, f"{result.describe()}: nothing recorded for {host}"
        msg = str(first["result"].get("msg", ""))
        assert "NSM-ERR" not in msg  # the bootstrap's marker is not for people
        if vanilla is None:
            # named as the release's minimum where it is newer (3.9 from 2.20): 3.8 would fail too
            oldest = ".".join(map(str, min_python(release)))
            wanted = (
                f"ns.mitogen cannot run Python on the target: found Python {full_version} at {interpreter}; "
                f"ns.mitogen needs Python {oldest} or newer; hint: set ansible_python_interpreter to Python {oldest} or newer"
            )
            assert first["status"] in ("failed", "unreachable") and wanted in msg, (wanted, first)
            continue
        theirs = next(r for r in vanilla.records if r["host"] == host)
        refusal = module_refusal(theirs["result"])
        assert theirs["status"] == "failed" and (refusal == "SyntaxError" or full_version in refusal), theirs
        assert (first["status"], module_refusal(first["result"])) == ("failed", refusal), (first, theirs)


def module_refusal(result: dict) -> str:
    """How a release's module refused the target's Python: its own check's message, or
    "SyntaxError" where the release's code does not even parse there (the file that fails
    first differs: AnsiballZ's wrapper or the module under vanilla, basic.py under ns.mitogen)."""
    text = "\n".join(str(result.get(k, "")) for k in ("msg", "module_stdout", "module_stderr"))  # vanilla's pty merges them
    return "SyntaxError" if "SyntaxError" in text else str(result.get("msg", ""))


DISCOVERY_PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars:
    ansible_python_interpreter: auto
    ansible_interpreter_python_fallback: [%s, %s]
  tasks:
    - name: discover
      ansible.builtin.ping:
"""


def discover(testbed: Testbed, tmp_path: Path, release: str, candidates: list[str]) -> list[dict]:
    """Each host's record of a ping under ``release`` with auto discovery over pyenv's ``candidates``."""
    found = pythons()
    missing = [v for v in candidates if v not in found]
    if missing:
        unavailable("needs pyenv's Python %s" % " and ".join(missing))
    playbook = tmp_path / "discovery.yml"
    playbook.write_text(DISCOVERY_PLAYBOOK % tuple(found[v] for v in candidates))
    result = runner.run_playbook(testbed, playbook, "mitogen_linear", tmp_path, bin_dir=bin_dir(release))
    check_run(result)
    assert len(result.records) == len(runner.HOSTS)
    return result.records


@pytest.mark.parametrize(
    ("release", "older", "floor"),
    [("2.16", "2.7", "3.6"), ("2.17", "3.6", "3.7")],
    ids=["2.16-py2.7", "2.17-py3.6"],
)
def test_discovery_where_the_release_would_pick_an_older_python(
    release: str, older: str, floor: str, testbed: Testbed, tmp_path: Path
) -> None:
    """2.16/2.17's discovery takes the first candidate found; ns.mitogen passes over one
    older than the release's floor (the core's for 2.16, 2.17's own 3.7), runs 3.12 and says so."""
    found = pythons()
    for record in discover(testbed, tmp_path, release, [older, "3.12"]):
        assert record["result"]["ansible_facts"]["discovered_interpreter_python"] == found["3.12"]
        assert record["result"]["warnings"] == [
            f"ns.mitogen runs {found['3.12']} on host {record['host']}, the first interpreter of the fallback list that runs "
            f"Python {floor} or newer; ansible-core's own discovery would have used {found[older]}"
        ]


def test_discovery_takes_python_3_6_under_2_16(testbed: Testbed, tmp_path: Path) -> None:
    """2.16's modules run on 3.6 and so does the core: the first candidate wins, as under vanilla."""
    found = pythons()
    for record in discover(testbed, tmp_path, "2.16", ["3.6", "3.12"]):
        assert record["result"]["ansible_facts"]["discovered_interpreter_python"] == found["3.6"]
        assert not [w for w in record["result"].get("warnings", []) if "ns.mitogen" in w]


def test_discovery_passes_over_a_python_the_release_cannot_use(testbed: Testbed, tmp_path: Path) -> None:
    """2.20+ modules need Python 3.9: discovery passes over a 3.8 that runs, to the next candidate."""
    found = pythons()
    for record in discover(testbed, tmp_path, "2.21", ["3.8", "3.12"]):
        assert record["result"]["ansible_facts"]["discovered_interpreter_python"] == found["3.12"]


COMPAT_PROBE = """
import json
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat
profile = _compat.module_profile(b"from ansible.module_utils.basic import AnsibleModule\\n")
built = _compat.configure_module_result(b"", "#!/usr/bin/python3", profile, "/m.py")
print(json.dumps({"version": _compat.VERSION, "profile": profile, "built": [type(p).__name__ for p in built]}))
"""


@pytest.mark.parametrize("release", RELEASES)
def test_compat_follows_the_release(release: str) -> None:
    """_compat under each release: no serialization profile (the runner's runpy path) up to 2.18."""
    python = bin_dir(release) / "python"
    env = {**os.environ, "PYTHONPATH": str(runner.COLLECTIONS)}
    out = subprocess.run([str(python), "-c", COMPAT_PROBE], capture_output=True, text=True, env=env, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["version"] == list(_key(release))
    if _key(release) <= (2, 18):
        assert (got["profile"], got["built"]) == (None, ["str", "str", "bytes", "str"])
    else:
        assert (got["profile"], got["built"]) == ("legacy", ["_BuiltModule", "str"])


# -- plugin documentation --------------------------------------------------------------------

#: A Python warning as `warnings` prints it: "<file>:<line>: <Category>: <message>" and
#: the source line, indented.
_PYTHON_WARNING = re.compile(r"^(?P<file>\S+\.py):\d+: \w+: .*\n(?:  .*\n)?", re.M)


def without_foreign_warnings(stderr: str) -> str:
    """``stderr`` without Python warnings raised outside this collection.

    Those are the installed release's and its libraries' (ansible-core 2.19+ beside
    cryptography 51 warns that DSA is deprecated whenever it loads its ssh agent
    module): not ours to fix, and nothing of ours is hidden by removing them.
    """
    return _PYTHON_WARNING.sub(lambda m: m[0] if "/ansible_collections/ns/mitogen/" in m["file"] else "", stderr)


def test_foreign_python_warnings_are_dropped_ours_kept() -> None:
    theirs = (
        "/venv/lib/python3.11/site-packages/ansible/_internal/_ssh/_ssh_agent.py:18: CryptographyDeprecationWarning: "
        "DSA is deprecated and support will be removed in a future release.\n"
        "  from cryptography.hazmat.primitives.asymmetric.dsa import (\n"
    )
    ours = "/x/ansible_collections/ns/mitogen/plugins/plugin_utils/_mux.py:9: DeprecationWarning: old\n  import y\n"
    assert without_foreign_warnings(theirs) == ""
    assert without_foreign_warnings(theirs + ours + "[WARNING]: other\n") == ours + "[WARNING]: other\n"


@pytest.mark.parametrize(("kind", "name"), PLUGIN_DOCS, ids=[name for _kind, name in PLUGIN_DOCS])
@pytest.mark.parametrize("release", RELEASES)
def test_ansible_doc_renders(release: str, kind: str, name: str) -> None:
    bins = bin_dir(release)
    text = runner.ansible_doc(kind, name, bins)
    assert (text.returncode, without_foreign_warnings(text.stderr)) == (0, ""), text
    assert name.upper() in text.stdout.upper()
    as_json = runner.ansible_doc(kind, name, bins, "--json")
    assert as_json.returncode == 0, as_json
    doc = json.loads(as_json.stdout)[name]["doc"]
    options = doc.get("options") or {}
    assert kind != "connection" or options, f"ansible-doc {release} lists no option of {name}"
    opening = doc["description"][0].split()[0]  # markup (M(), C()...) renders differently per release
    assert re.search(rf"^\s+{re.escape(opening)}\s", text.stdout, re.M), f"{name}'s description is not rendered"
    missing = [opt for opt in options if opt not in text.stdout]
    assert not missing, f"ansible-doc {release} does not render options {missing} of {name}"
    if release != MAIN:  # the same options, from the same doc fragments, as under .venv
        main = json.loads(runner.ansible_doc(kind, name, bin_dir(MAIN), "--json").stdout)[name]["doc"]
        assert sorted(options) == sorted(main.get("options") or {})
