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


def test_a_lazy_pattern_given_a_function_calls_it_on_first_use_only():
    calls = []

    def text() -> str:
        calls.append(1)
        return "[0-9]+"

    pattern = _patterns.LazyPattern(text)
    assert calls == []
    assert pattern.match("42") is not None and pattern.match("x") is None
    assert calls == [1] and pattern.pattern == "[0-9]+"


def test_shell_syntax_is_the_one_regex_it_replaced():
    import random

    from ansible_collections.ns.mitogen.plugins.plugin_utils import _specs

    regex = re.compile(r"[;&|<>()`$\n]|^\s*[A-Za-z_][A-Za-z0-9_]*=")
    fixed = ["/usr/bin/python3", ". /v/bin/activate && python", "FOO=1 python3", " A_1=x py", "1A=x py", "$HOME/py"]
    fixed += ["/usr/bin/env FOO=1 python3", "py\n", "a=b", "=x", "python3 -X a=b", "\tB= py", ""]
    rng = random.Random(4711)
    alphabet = "aZ_1=/ \t\n;&|<>()`$."
    generated = ["".join(rng.choice(alphabet) for _n in range(rng.randrange(10))) for _i in range(5000)]
    for setting in fixed + generated:
        assert _specs.shell_syntax(setting) is (regex.search(setting) is not None), repr(setting)
    assert _specs.shell_syntax(". /v/bin/activate && python") and not _specs.shell_syntax("/usr/bin/python3")
