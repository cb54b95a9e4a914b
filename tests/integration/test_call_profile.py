"""Measuring each call a context handles (``_callprofile``): on with ``NS_MITOGEN_CALL_PROFILE`` only.

A real local interpreter started with the variable in its environment records one
JSON line per call it handles (the function, its CPU, its children's, its wall
time), and a cProfile file per call with ``NS_MITOGEN_CALL_CPROFILE=1``; one
started without it records nothing and never loads the module.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from tests.integration import remote_helpers as rh

SPEC = {"method": "local", "python": sys.executable}
PROFILED = "ansible_collections.ns.mitogen.plugins.module_utils.mitogen._callprofile"


def _lines(directory):
    found = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("calls-") and name.endswith(".jsonl"):
            with open(os.path.join(directory, name)) as fp:
                found += [json.loads(line) for line in fp]
    return found


@pytest.mark.parametrize("cprofile", [False, True], ids=["cpu", "cprofile"])
def test_a_context_started_with_the_variable_records_each_call(tmp_path, monkeypatch, cprofile):
    monkeypatch.setenv("NS_MITOGEN_CALL_PROFILE", str(tmp_path))
    if cprofile:
        monkeypatch.setenv("NS_MITOGEN_CALL_CPROFILE", "1")
    with api.Session(connect_timeout=30) as session:
        ctx = session.connect(SPEC)
        pid = ctx.call(os.getpid)
        ctx.call(os.system, "true")
    # a call's line is written as its state is restored, after the reply: in either order
    lines = sorted((x for x in _lines(tmp_path) if x["fn"] in ("posix.getpid", "posix.system")), key=lambda x: x["fn"])
    assert [x["fn"] for x in lines] == ["posix.getpid", "posix.system"]
    assert all(x["cpu_ms"] >= 0 and x["wall_ms"] > 0 for x in lines)
    assert lines[1]["children_ms"] >= 0
    assert os.path.exists(tmp_path / ("calls-%d.jsonl" % pid))
    profiles = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".prof")
    if cprofile:
        assert any(p.startswith("getpid-%d-" % pid) for p in profiles)
        assert all(x["calls"] >= 1 for x in lines)
    else:
        assert profiles == []


def test_without_the_variable_nothing_is_recorded_or_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv("NS_MITOGEN_CALL_PROFILE", raising=False)
    with api.Session(allow_imports=["tests.integration.remote_helpers"], connect_timeout=30) as session:
        ctx = session.connect(SPEC)
        assert ctx.call(os.getpid) != os.getpid()
        assert ctx.call(rh.module_origin, PROFILED) == ""
        assert ctx.call(rh.module_origin, "json") != ""  # the helper sees what is loaded
    assert list(tmp_path.iterdir()) == []
