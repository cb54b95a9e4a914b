"""The lowering pass (_lower): the core as Python 3.6 and 3.7 targets run it.

Checked against the real interpreters (pyenv's 3.6 and 3.7, each a subprocess that
only compiles or runs text), and against a reference: the lowered module parses to
the same tree as the original with its annotations removed by an ast transformer.
"""

from __future__ import annotations

import ast
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils import mitogen
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._lower import LoweringError, lower_source
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

CORE = sorted(Path(mitogen.__file__).parent.glob("*.py"))
OLD_PYTHONS = ["3.6", "3.7"]


def old_python(version: str) -> str:
    python = pythons().get(version)
    if python is None:
        unavailable("needs pyenv's Python %s" % version)
    return python


class _Unannotated(ast.NodeTransformer):
    """The reference: what lowering means, on the tree (positional-only made ordinary)."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_arguments(self, node: ast.arguments) -> ast.arguments:
        self.generic_visit(node)
        node.args, node.posonlyargs = node.posonlyargs + node.args, []
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return ast.Pass()
        return ast.Assign(targets=[node.target], value=node.value, type_comment=None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        # typing's names: which stay is test_typing_names_only_annotations_used_are_dropped's
        return None if node.module in ("__future__", "typing") else node


def _shape(tree: ast.AST) -> str:
    return ast.dump(_Unannotated().visit(tree), include_attributes=False)


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_lowered_core_means_what_the_source_means(path: Path) -> None:
    source = path.read_bytes()
    lowered = lower_source(source, str(path))
    assert lowered.count(b"\n") == source.count(b"\n"), "lines moved"
    original, ours = ast.parse(source), ast.parse(lowered)
    assert not [n for n in ast.walk(ours) if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    # No annotation is left; statements sit on the lines they sit on in the file.
    assert not [n for n in ast.walk(ours) if isinstance(n, ast.AnnAssign) or getattr(n, "annotation", None)]
    assert not [n for n in ast.walk(ours) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns]
    assert _lines(ours) == _lines(original)
    assert _shape(ours).replace("Pass()", "") == _shape(original).replace("Pass()", "")


def _lines(tree: ast.AST) -> list[int]:
    """Line of each statement but those lowering may drop or make ``pass``."""
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.stmt)
        and not isinstance(n, ast.Pass)
        and not (isinstance(n, ast.ImportFrom) and n.module in ("__future__", "typing"))
        and not (isinstance(n, ast.AnnAssign) and n.value is None)
    ]


def test_typing_names_only_annotations_used_are_dropped() -> None:
    source = b"from typing import Any, Dict, List, Optional\nX: Dict[str, int] = {}\nY = List[int]\ndef f(a: Any) -> Optional[int]:\n    pass\n"
    assert lower_source(source).splitlines()[0] == b"from typing import List"
    assert lower_source(b"from typing import Any\nx: Any = 1\n") == b"\nx = 1\n"
    nested = lower_source(b"if 1:\n    from typing import Any\nx: Any = 1\n")
    assert nested.splitlines()[1] == b"    pass"
    shared = lower_source(b"from typing import Any; import os\nx: Any = os\n")
    assert shared.splitlines()[0] == b"pass; import os"


@pytest.mark.parametrize("version", OLD_PYTHONS)
def test_every_lowered_core_module_compiles_on(version: str) -> None:
    python = old_python(version)
    sources = {str(p): lower_source(p.read_bytes(), str(p)).decode("utf-8") for p in CORE}
    probe = "import json,sys\nfor name, text in json.load(sys.stdin).items():\n    compile(text, name, 'exec')\n"
    out = subprocess.run(
        [python, "-c", probe], input=json.dumps(sources), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr


TRICKY = '''
from __future__ import annotations
from typing import (
    Any,
    Dict,  # a comment
    Optional,
)
TABLE: Dict[
    str, int
] = {"a": 1}
DECLARED: int

class Box:
    size: int
    label: Optional[
        str] = None

    def take(self, first: int, /, second: (Dict[str, int]) = None, *rest: Any, key: int = 3, **kw: Any) -> Optional[
        tuple
    ]:
        """Both parameters kinds, a multi-line return annotation."""
        self.seen: int = first
        return *rest, first

    def spread(self, items: Any = (1,), /) -> (list):
        yield *items, 2

pair = lambda a, /, b=2: (a, b)

def boom(x: int) -> int:
    raise ValueError(x)
'''

RUN_TRICKY = """
import json, sys, traceback
namespace = {}
exec(compile(sys.stdin.read(), "tricky.py", "exec"), namespace)
box = namespace["Box"]()
try:
    namespace["boom"](1)
except ValueError:
    line = traceback.extract_tb(sys.exc_info()[2])[-1].lineno
print(json.dumps([box.take(1, {}, 7), box.seen, list(box.spread()), namespace["pair"](1), namespace["TABLE"], line]))
"""


@pytest.mark.parametrize("version", OLD_PYTHONS)
def test_tricky_module_runs_on(version: str) -> None:
    python = old_python(version)
    lowered = lower_source(TRICKY.encode()).decode()
    out = subprocess.run([python, "-c", RUN_TRICKY], input=lowered, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, (out.stderr, lowered)
    boom_line = TRICKY.splitlines().index("    raise ValueError(x)") + 1
    assert json.loads(out.stdout) == [[7, 1], 1, [[1, 2]], [1, 2], {"a": 1}, boom_line]


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("if (n := 1):\n    pass\n", ":="),
        ("x = 1\nprint(f'{x=}')\n", "f-string"),
        ("match x:\n    case 1:\n        pass\n", "match"),
        ("@(lambda f: f)\ndef f():\n    pass\n", "decorator"),
        ("with (open('a') as a, open('b') as b):\n    pass\n", "parenthesized with"),
        ("for i in x:\n    try:\n        pass\n    finally:\n        continue\n", "continue in a finally"),
        ("from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\n", "class P"),
    ],
)
def test_what_cannot_be_lowered_is_refused_by_line(source: str, named: str) -> None:
    with pytest.raises(LoweringError, match=named) as info:
        lower_source(source, "m.py")
    assert "m.py, line " in str(info.value)


def test_what_old_pythons_parse_is_left_alone() -> None:
    ok = textwrap.dedent(
        """
        with (open('a')) as a, open('b'):
            pass
        for i in x:
            try:
                pass
            finally:
                for j in y:
                    continue
        print(f"{a!r}", f"x={a!r}", f"{a == b}")
        """
    )
    assert lower_source(ok) == ok.encode()


TYPE_CHECKING_SHAPES = """
from __future__ import annotations
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    from typing import Protocol, TypedDict

    class Hello(TypedDict):
        pid: int

    class RunLike(Protocol):
        signals: Dict[int, object]

        def drops(self, name: str) -> bool: ...

def pid(hello: Hello) -> int:
    return hello["pid"]

print(pid({"pid": 7}))
"""


@pytest.mark.parametrize("version", OLD_PYTHONS)
def test_typed_shapes_under_type_checking_are_lowered_and_run_on(version: str) -> None:
    """TypedDict/Protocol classes only the type checker sees never run: they need only parse."""
    python = old_python(version)
    lowered = lower_source(TYPE_CHECKING_SHAPES.encode(), "shapes.py").decode()
    out = subprocess.run([python, "-c", lowered], capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stdout) == (0, "7\n"), (out.stderr, lowered)


def test_a_typed_shape_outside_type_checking_is_still_refused() -> None:
    source = TYPE_CHECKING_SHAPES.replace("if TYPE_CHECKING:", "if True:")
    with pytest.raises(LoweringError, match="class Hello"):
        lower_source(source, "m.py")
