# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``_bundle.run_first``: the modules ``install()`` runs, from the bundle, without the import system.

On a real package in a temporary directory: its modules are compiled and marshalled as
a bundle holds them, then run (or not) as a worker would.
"""

from __future__ import annotations

import marshal
import sys

import pytest

pytest.importorskip("ansible")

from ansible_collections.ns.mitogen.plugins import plugin_utils  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils import _bundle  # noqa: E402

SOURCES = {
    "low": "VALUE = 41\n",
    "high": "from nsm_probe_pkg import low\nVALUE = low.VALUE + 1\n",
}


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A package ``nsm_probe_pkg`` whose modules the bundle in use holds; cleaned up after."""
    package = tmp_path / "nsm_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    entries = {}
    for name, text in SOURCES.items():
        path = package / (name + ".py")
        path.write_text(text)
        code = marshal.dumps(compile(text, str(path), "exec"))
        entries["nsm_probe_pkg." + name] = (str(path), plugin_utils.stamp(str(path)), memoryview(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_bundle, "_BUNDLED", entries)
    monkeypatch.setattr(_bundle, "_FIRST", ["nsm_probe_pkg.low", "nsm_probe_pkg.high"])
    monkeypatch.setattr(_bundle, "FINISHED", [])
    yield package
    for name in [n for n in sys.modules if n.startswith("nsm_probe_pkg")]:
        del sys.modules[name]


def _finder():
    return _bundle.BundleFinder(_bundle.fresh_code, ("nsm_probe_pkg",), lambda: None)


def test_run_first_runs_each_module_after_what_it_imports(bundled):
    finder = _finder()
    _bundle.run_first(finder)
    high = sys.modules["nsm_probe_pkg.high"]
    assert high.VALUE == 42 and high.__file__ == str(bundled / "high.py")
    assert sys.modules["nsm_probe_pkg"].high is high  # bound on its package, as an import does
    assert isinstance(high.__loader__, _bundle.BundledLoader) and high.__spec__.name == "nsm_probe_pkg.high"
    assert sorted(finder.served) == ["nsm_probe_pkg.high", "nsm_probe_pkg.low"]
    assert _bundle.FINISHED == ["nsm_probe_pkg.low", "nsm_probe_pkg.high"]


def test_run_first_stops_at_a_changed_source(bundled):
    (bundled / "low.py").write_text("VALUE = 99\n")  # no longer what the bundle holds
    finder = _finder()
    _bundle.run_first(finder)
    assert "nsm_probe_pkg.low" not in sys.modules and "nsm_probe_pkg.high" not in sys.modules
    assert finder.served == {}


def test_run_first_leaves_a_module_whose_body_raises_to_the_imports_that_follow(bundled, monkeypatch):
    broken = marshal.dumps(compile("raise ImportError('not under this Ansible')\n", "low.py", "exec"))
    path, stamp = _bundle._BUNDLED["nsm_probe_pkg.low"][:2]
    monkeypatch.setitem(_bundle._BUNDLED, "nsm_probe_pkg.low", (path, stamp, memoryview(broken)))
    _bundle.run_first(_finder())
    assert "nsm_probe_pkg.low" not in sys.modules and "nsm_probe_pkg.high" not in sys.modules
    assert _bundle.FINISHED == []
