"""Patterns compiled on first use (plugin_utils/_patterns.py)."""

from __future__ import annotations

import re

from ansible_collections.ns.mitogen.plugins.plugin_utils import _patterns, _via


def test_a_lazy_pattern_compiles_on_first_use_and_then_is_the_pattern():
    pattern = _patterns.LazyPattern(r"^(a+)(b?)$", re.I)
    compiled_before = pattern._compiled
    match = pattern.match("AAb")
    assert compiled_before is None and match is not None and match.groups() == ("AA", "b")
    assert pattern.compiled() is re.compile(r"^(a+)(b?)$", re.I)
    assert pattern.sub("x", "aa") == "x" and pattern.pattern == r"^(a+)(b?)$"


def test_compile_all_compiles_every_pattern_made():
    pattern = _patterns.LazyPattern(r"[0-9]+")
    _patterns.compile_all()
    assert pattern._compiled is not None
    assert _via._VIA._compiled is not None  # a module's, as our strategies compile them before forking
