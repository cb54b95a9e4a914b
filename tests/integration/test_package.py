"""The collection tarball ships what a user of the installed collection needs, nothing else.

``ansible-galaxy collection build`` takes every file of the directory it is given
but those ``galaxy.yml``'s ``build_ignore`` names: a checkout's virtualenvs, build
outputs or benchmark results would ship unless listed there. These tests build the
tarball twice -- from a fresh ``git clone`` (no untracked files) and from this
checkout as it is (``.venv``, ``.venvs``, ``.build`` and tool caches present) -- and
check each against one allow-list (``SHIPPED``) and a size bound.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
GALAXY = Path(sys.executable).parent / "ansible-galaxy"
MAX_BYTES = 1024 * 1024

#: Every file the tarball may hold (regular expressions over paths in it).
SHIPPED = [
    r"MANIFEST\.json",
    r"FILES\.json",
    r"README\.md",
    r"CHANGELOG\.(rst|md)",  # made by antsibull-changelog release
    r"LICENSE",
    r"meta/runtime\.yml",
    r"plugins/[a-z_]+/[a-z_]+\.py",  # plugins and their private utils
    r"plugins/module_utils/mitogen/[a-z_]+\.py",  # the core (sent to targets)
    r"roles/[a-z_]+/(defaults|files|handlers|meta|tasks|templates|vars)/[\w.-]+",
    r"docs/[\w.-]+\.(yml|md|rst)",  # example playbooks and documents for users
    r"strategy_plugins/mitogen(_[a-z_]+)?\.py",  # for ansible.cfg files written for the original Mitogen
    r"tests/config\.yml",  # ansible-test sanity (galaxy-importer) reads the supported Pythons here
    r"changelogs/changelog\.yaml",
]
_SHIPPED_RE = re.compile("|".join("(?:%s)" % p for p in SHIPPED))
#: Files the tarball must hold (a build_ignore pattern that is too wide would drop them).
REQUIRED = [
    "README.md",
    "LICENSE",
    "meta/runtime.yml",
    "plugins/connection/ssh.py",
    "tests/config.yml",
    "changelogs/changelog.yaml",
]


def shipped(path: str) -> bool:
    """True if the allow-list lets ``path`` (relative to the collection) into the tarball."""
    return _SHIPPED_RE.fullmatch(path) is not None


def build(source: Path, out: Path) -> Path:
    """The tarball ``ansible-galaxy collection build`` makes of ``source``."""
    subprocess.run(
        [str(GALAXY), "collection", "build", "--output-path", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tarball,) = out.glob("ns-mitogen-*.tar.gz")
    return tarball


def files_in(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as tar:
        return {member.name for member in tar.getmembers() if not member.isdir()}


def check_tarball(tarball: Path) -> set[str]:
    """The tarball's files, after checking them against the allow-list and the bound."""
    files = files_in(tarball)
    strays = sorted(path for path in files if not shipped(path))
    assert not strays, "files a user does not need in %s: %s" % (tarball.name, strays)
    missing = sorted(set(REQUIRED) - files)
    assert not missing, "files missing from %s: %s" % (tarball.name, missing)
    size = tarball.stat().st_size
    assert size < MAX_BYTES, "%s is %d bytes (bound: %d)" % (tarball.name, size, MAX_BYTES)
    return files


def tracked_files(repo: Path) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=str(repo), check=True, capture_output=True)
    return {path for path in out.stdout.decode().split("\0") if path}


@pytest.fixture(scope="module")
def clone_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a fresh clone of this checkout's HEAD, the tarball built from it)."""
    work = tmp_path_factory.mktemp("package")
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True, timeout=120)
    return clone, build(clone, work / "dist")


def test_tarball_from_a_fresh_clone_ships_the_allow_list(clone_build: tuple[Path, Path]) -> None:
    clone, tarball = clone_build
    files = check_tarball(tarball)
    # Nothing committed that the allow-list names is left out (build_ignore too wide).
    wanted = {path for path in tracked_files(clone) if shipped(path)}
    assert sorted(wanted - files) == []


def test_tarball_from_this_checkout_ships_the_allow_list(tmp_path: Path) -> None:
    present = [name for name in (".venv", ".venvs", ".build") if (ROOT / name).exists()]
    assert ".build" in present, "the checkout has no .build: run scripts/setup"
    files = check_tarball(build(ROOT, tmp_path))
    assert not [path for path in files if path.split("/")[0] in present]


def test_sanity_ignores_name_no_shipped_file() -> None:
    """tests/sanity stays out of the tarball: so none of its entries may be needed there.

    (``ansible-test sanity`` on the tarball's content would then fail on that file.)
    """
    entries = []
    for ignore in sorted((ROOT / "tests" / "sanity").glob("ignore-*.txt")):
        for line in ignore.read_text().splitlines():
            path = line.split("#", 1)[0].strip().split(" ")[0]
            if path:
                entries.append((ignore.name, path))
    assert entries, "no sanity ignore entries found: is tests/sanity still where this test looks?"
    assert [(name, path) for name, path in entries if shipped(path)] == []


def test_allow_list_rejects_development_files() -> None:
    """Self-test: what the checkout holds besides the collection is not on the list."""
    for path in [
        ".venv/bin/python",
        ".venvs/core-2.16/bin/python",
        ".build/dist/ns-mitogen-0.1.0.tar.gz",
        ".ci/run",
        "benchmarks/results/x.json",
        "demo/run.py",
        "scripts/setup",
        "pyproject.toml",
        "requirements-dev.txt",
        "tests/integration/test_package.py",
        "tests/differential/runner.py",
        "tests/sanity/ignore-2.21.txt",
        "tests/output/junit.xml",
        "plugins/module_utils/mitogen/__pycache__/api.cpython-311.pyc",
        "changelogs/fragments/x.yml",
        "changelogs/config.yaml",
    ]:
        assert not shipped(path), path
    assert shipped("plugins/connection/ssh.py") and shipped("roles/compare/tasks/main.yml")
