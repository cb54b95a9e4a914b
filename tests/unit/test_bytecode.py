"""Code beside module sources (``_bytecode``), decided in memory: who is sent code, what it checks.

A real root ``Responder`` serves the standard library's ``json`` tree from this
controller's files; a real ``Importer`` (over an in-memory route table, as in
test_trust.py) stores and runs what it sends, and an intermediary ``Responder``
on it serves a child of its own. The real-process counterpart is
tests/integration/test_bytecode.py.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Dict

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _bytecode
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import PeerProtocolError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._importer import Importer, Responder
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._routing import RouteTable

MAGIC = importlib.util.MAGIC_NUMBER.hex()
OTHER_TAG = "00000d0a-0"  # no Python's magic number


class S:
    def __repr__(self) -> str:
        return "S"


def ran(msg: Any) -> None:
    raise AssertionError("a handler is never run by the table")


def table(cid: int) -> RouteTable:
    t = RouteTable(cid, "t%d" % cid, connected=lambda s: True)
    t.install_builtins({h: ran for h in RouteTable.BUILTIN})
    t.set_parent(S(), 0)
    return t


def root_and_child() -> "tuple[Responder, Importer]":
    root = Responder(table(0), ["json"])  # type: ignore[arg-type]
    return root, Importer(table(5), ["json"], {})  # type: ignore[arg-type]


def test_root_sends_code_to_a_child_of_its_magic_number_only():
    root, child = root_and_child()
    root.accepts_code(5, child.bytecode.tag)
    bundle = root.bundle_for(5, ["json"])
    assert bundle["json"][4][0] == _bytecode.TAG and bundle["json.decoder"][4][0] == _bytecode.TAG
    root.accepts_code(6, OTHER_TAG)
    assert all(len(e) == 4 for e in root.bundle_for(6, ["json"]).values())
    assert all(len(e) == 4 for e in root.bundle_for(7, ["json"]).values())  # no tag said: source only
    level = 2 if sys.flags.optimize != 2 else 1
    root.accepts_code(8, "%s-%d" % (MAGIC, level))
    assert root.bundle_for(8, ["json"])["json"][4][0] == "%s-%d" % (MAGIC, level)  # compiled at its level


def test_child_runs_the_code_it_was_sent_and_names_the_source_file():
    root, child = root_and_child()
    root.accepts_code(5, child.bytecode.tag)
    child.store(root.bundle_for(5, ["json"]), "json")
    is_pkg, filename, source, _related = child.cache["json.decoder"]
    assert filename.startswith("master:") and source and "json.decoder" in child.bytecode.sent
    code = child.bytecode.code_of("json.decoder", filename, source.decode())
    assert code.co_filename == filename and child.bytecode.counts == {"compiled": 0, "from_code": 1}
    assert child.bytecode.code_of("json.decoder", filename, source.decode()) is code  # a second import: the same code
    assert "json.decoder" not in child.bytecode.sent and child.bytecode.marshalled("json.decoder") is not None


def test_intermediary_passes_code_on_to_a_child_of_its_own_tag_only():
    root, middle = root_and_child()
    root.accepts_code(5, middle.bytecode.tag)
    middle.store(root.bundle_for(5, ["json"]), "json")
    _is_pkg, filename, source, _related = middle.cache["json.scanner"]
    middle.bytecode.code_of("json.scanner", filename, (source or b"").decode())  # run here: passed on marshalled again
    serves = Responder(middle.router, ["json"], middle)
    serves.accepts_code(9, middle.bytecode.tag)
    bundle = serves.bundle_for(9, ["json"])
    assert bundle["json.decoder"][4] == (middle.bytecode.tag, middle.bytecode.sent["json.decoder"])
    assert bundle["json.scanner"][4][0] == middle.bytecode.tag
    serves.accepts_code(10, OTHER_TAG)
    assert all(len(e) == 4 for e in serves.bundle_for(10, ["json"]).values())


@pytest.mark.parametrize("field", [None, ("tag",), ("tag", "text"), (1, b""), ["tag", b""], ("t", b"", 1)])
def test_malformed_code_field_is_a_protocol_error(field):
    _root, child = root_and_child()
    with pytest.raises(PeerProtocolError):
        child.store({"x": (False, "master:/x.py", b"X = 1\n", (), field)})


def test_code_that_does_not_load_is_compiled_from_source():
    _root, child = root_and_child()
    child.store({"x": (False, "master:/x.py", b"X = 1\n", (), (child.bytecode.tag, b"\xff not marshal"))})
    code = child.bytecode.code_of("x", "master:/x.py", "X = 1\n")
    assert code.co_filename == "master:/x.py" and child.bytecode.counts == {"compiled": 1, "from_code": 0}
    ns: Dict[str, Any] = {}
    exec(code, ns)
    assert ns["X"] == 1


def test_code_for_another_file_name_is_not_run():
    _root, child = root_and_child()
    other = compile("X = 2\n", "master:/elsewhere.py", "exec", dont_inherit=True)
    import marshal

    child.store({"x": (False, "master:/x.py", b"X = 1\n", (), (child.bytecode.tag, marshal.dumps(other)))})
    assert child.bytecode.code_of("x", "master:/x.py", "X = 1\n").co_filename == "master:/x.py"
    assert child.bytecode.counts == {"compiled": 1, "from_code": 0}


def test_a_tag_names_the_magic_number_and_level():
    assert "%s-%d" % (MAGIC, sys.flags.optimize) == _bytecode.TAG
    assert _bytecode.optimize_for(_bytecode.TAG) == sys.flags.optimize
    for bad in (OTHER_TAG, None, 3, "%s-7" % MAGIC, "%s" % MAGIC):
        assert _bytecode.optimize_for(bad) is None
