# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core's source as every supported target Python runs it (private module).

Owns: ``lower_source()``, the one pass every core module goes through before it
leaves the controller: into the boot payload (``_payload``, which then also strips
docstrings and comments) and when the importer's responder serves it
(``_importer``). The core is written for Python 3.8+, with annotations and
``from __future__ import annotations`` (which Python 3.6 cannot parse); targets run
Python 3.6 and newer (RHEL 8's platform-python is 3.6).

What it changes, found on the parsed tree and cut out of the text:
- ``from __future__ import annotations`` and every annotation go: of parameters and
  returns, ``x: T = v`` becomes ``x = v`` and ``x: T`` alone becomes ``pass``; so
  nothing of ``typing`` is evaluated on a target;
- names imported from ``typing`` that nothing else uses go too (importing
  ``typing`` costs a Python 3.6 target ~20 ms);
- positional-only parameters (3.8) become ordinary ones; ``return *a, b`` and
  ``yield *a, b`` (3.8) get their parentheses.

Rules it keeps:
- Every line stays on its line number (a cut spanning lines leaves ``\\``
  continuations), so a traceback from a target names the lines of the file in the
  repository; comments and docstrings stay (the payload strips them itself).
- Behaviour is unchanged on every target Python. A construct it cannot lower
  (``:=``, ``f"{x=}"``, ``match``, a 3.9 decorator expression, parenthesized
  ``with`` items, ``continue`` in ``finally``, a class whose annotations are its
  behaviour such as a ``NamedTuple``) raises ``LoweringError`` naming the file and
  line, on the controller, never on a target.
- Cheap: one ``ast.parse`` (C) and byte slicing; no ``ast.unparse``, which costs
  several times the parse (the responder lowers on the first task's path).

Controller only (needs the 3.8+ ``end_col_offset`` positions): no target imports it.
"""

from __future__ import annotations

import ast
import re
from typing import List, Optional, Set, Tuple, Union

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
#: bases or decorators whose classes read their own annotations
_ANNOTATION_CLASSES = {"NamedTuple", "TypedDict", "dataclass", "Protocol"}
_Def = Union[ast.FunctionDef, ast.AsyncFunctionDef]


class LoweringError(ValueError):
    """The source uses a construct older target Pythons cannot run and this pass cannot lower."""


def lower_source(source: Union[str, bytes], filename: str = "<core>") -> bytes:
    """``source`` lowered for every supported target Python (see the module docstring).

    Raises ``SyntaxError`` for a source that does not parse here and
    ``LoweringError`` for one that uses a construct this pass cannot lower.
    """
    data = source.encode("utf-8") if isinstance(source, str) else source
    tree = ast.parse(data, filename)
    cuts = _Cuts(data, filename)
    cuts.visit(tree)
    cuts.drop_unused_typing(tree)
    return cuts.apply()


class _Cuts(ast.NodeVisitor):
    """Walks a module once: collects the cuts and the names still used after them."""

    def __init__(self, data: bytes, filename: str) -> None:
        self.data = data
        self.filename = filename
        self.starts = [0] + [m.end() for m in _LINE_BREAK.finditer(data)]
        self.cuts: List[Tuple[int, int, bytes]] = []
        self.used: Set[str] = set()  # names read or bound outside annotations
        self.in_finally = 0
        self.type_checking = 0  # inside ``if TYPE_CHECKING:``: never runs

    def __repr__(self) -> str:
        return "_Cuts(%s, %d cuts)" % (self.filename, len(self.cuts))

    # -- positions and output ---------------------------------------------------------------
    def at(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def start(self, node: ast.AST) -> int:
        return self.at(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def cut(self, start: int, end: int, replacement: bytes = b"") -> None:
        """Replace ``data[start:end]``, keeping the line count (``\\`` continuations first)."""
        breaks = len(_LINE_BREAK.findall(self.data, start, end))
        self.cuts.append((start, end, b"\\\n" * breaks + replacement))

    def apply(self) -> bytes:
        out, pos = [], 0
        for start, end, replacement in sorted(self.cuts):
            if start < pos:
                raise LoweringError("%s: overlapping cuts at byte %d (a bug of the lowering pass)" % (self.filename, start))
            out += [self.data[pos:start], replacement]
            pos = end
        out.append(self.data[pos:])
        return b"".join(out)

    def refuse(self, node: ast.AST, what: str) -> LoweringError:
        line = getattr(node, "lineno", "?")
        return LoweringError("%s, line %s: %s cannot be lowered for older target Pythons" % (self.filename, line, what))

    def closing_parens(self, opened: int, pos: int) -> int:
        """Past the ``opened`` closing parentheses that follow ``pos`` (and blanks between)."""
        while opened:
            pos = self.data.index(b")", pos) + 1
            opened -= 1
        return pos

    def cut_annotation(self, after: int, annotation: ast.expr) -> None:
        """Cut from ``after`` (the end of what is annotated) through ``annotation``."""
        opened = self.data.count(b"(", after, self.start(annotation))
        self.cut(after, self.closing_parens(opened, self.end(annotation)))

    # -- what is cut ------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        self.used.add(node.id)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__" and any(a.name == "annotations" for a in node.names):
            kept = [a.name for a in node.names if a.name != "annotations"]
            self.replace_statement(node, b"from __future__ import " + ", ".join(kept).encode() if kept else b"")

    def replace_statement(self, node: ast.stmt, text: bytes) -> None:
        """``node`` becomes ``text`` (``pass`` where a statement is needed and ``text`` is empty)."""
        start, end = self.start(node), self.end(node)
        line_end = _LINE_BREAK.search(self.data, end)
        rest = self.data[end : line_end.start() if line_end else len(self.data)].strip()
        if text or node.col_offset or (rest and not rest.startswith(b"#")):
            self.cut(start, end, text or b"pass")
        else:  # a statement alone at the margin: blank lines do
            self.cuts.append((start, end, b"\n" * len(_LINE_BREAK.findall(self.data, start, end))))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is None:
            self.replace_statement(node, b"pass")  # ``x: T`` binds nothing
            return
        self.visit(node.value)
        opened = self.data.count(b"(", self.end(node.target), self.start(node.annotation))
        after = self.closing_parens(opened, self.end(node.annotation))
        equals = self.data.index(b"=", after)
        self.cut(self.end(node.target), equals + 1, b" =")

    def visit_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.cut_annotation(self.start(node) + len(node.arg.encode("utf-8")), node.annotation)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.function(node)

    def function(self, node: _Def) -> None:
        self.check_decorators(node)
        self.used.add(node.name)
        for child in node.decorator_list:
            self.visit(child)
        self.visit(node.args)
        if node.args.posonlyargs:
            self.cut_slash(node.args)
        if node.returns is not None:
            arrow = self.data.rindex(b"->", self.start(node), self.start(node.returns))
            while self.data[arrow - 1 : arrow] in (b" ", b"\t"):
                arrow -= 1
            self.cut_annotation(arrow, node.returns)
        finally_depth, self.in_finally = self.in_finally, 0  # a def inside finally starts afresh
        for stmt in node.body:
            self.visit(stmt)
        self.in_finally = finally_depth

    def visit_Lambda(self, node: ast.Lambda) -> None:
        if node.args.posonlyargs:
            self.cut_slash(node.args)
        self.generic_visit(node)

    def cut_slash(self, args: ast.arguments) -> None:
        """``a, /, b`` -> ``a, b``: cut from the end of the last positional-only one through ``/``."""
        last = len(args.posonlyargs) - 1
        first_default = len(args.posonlyargs) + len(args.args) - len(args.defaults)
        node: ast.AST = args.defaults[last - first_default] if last >= first_default else args.posonlyargs[last]
        end = self.end(node)
        if isinstance(node, ast.arg) and node.annotation is not None:
            opened = self.data.count(b"(", self.start(node), self.start(node.annotation))
            end = self.closing_parens(opened, end)
        self.cut(end, self.data.index(b"/", end) + 1)

    def visit_Return(self, node: Union[ast.Return, ast.Yield]) -> None:
        value = node.value
        if isinstance(value, ast.Tuple) and any(isinstance(e, ast.Starred) for e in value.elts):
            if self.data[self.start(value) : self.start(value) + 1] != b"(":
                self.cut(self.start(value), self.start(value), b"(")
                self.cut(self.end(value), self.end(value), b")")
        self.generic_visit(node)

    visit_Yield = visit_Return

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.check_decorators(node)
        self.used.add(node.name)
        if {_last_name(n) for n in node.bases + node.decorator_list} & _ANNOTATION_CLASSES and not self.type_checking:
            raise self.refuse(node, "class %s (its annotations are its behaviour)" % node.name)
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if _last_name(node.test) != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_checking += 1
        for stmt in node.body:
            self.visit(stmt)
        self.type_checking -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    # -- what is refused --------------------------------------------------------------------
    def check_decorators(self, node: Union[_Def, ast.ClassDef]) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            while isinstance(target, ast.Attribute):
                target = target.value
            if not isinstance(target, ast.Name):
                raise self.refuse(decorator, "a decorator that is not a dotted name or a call of one (3.9)")

    def visit_NamedExpr(self, node: ast.AST) -> None:
        raise self.refuse(node, "an assignment expression (:=, 3.8)")

    def visit_Match(self, node: ast.AST) -> None:
        raise self.refuse(node, "a match statement (3.10)")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for text, value in zip(node.values, node.values[1:]):
            if isinstance(text, ast.Constant) and str(text.value).endswith("=") and isinstance(value, ast.FormattedValue):
                if re.search(rb"[^=!<>]=\s*(?:![rsa])?(?::[^{}]*)?}", self.data[self.start(node) : self.end(node)]):
                    raise self.refuse(node, 'a self-documenting f-string f"{x=}" (3.8)')
        self.generic_visit(node)

    def visit_With(self, node: Union[ast.With, ast.AsyncWith]) -> None:
        last = node.items[-1]
        if len(node.items) > 1 or last.optional_vars is not None:
            head = self.data[self.start(node) : self.start(node.items[0].context_expr)]
            tail_from = self.end(last.optional_vars or last.context_expr)
            tail = self.data[tail_from : self.data.index(b":", tail_from)]
            if b"(" in head and b")" in tail:
                raise self.refuse(node, "parenthesized with items (3.9)")
        self.generic_visit(node)

    visit_AsyncWith = visit_With

    def visit_Try(self, node: ast.Try) -> None:
        for part in (node.body, node.handlers, node.orelse):
            for child in part:
                self.visit(child)
        self.in_finally += 1
        for stmt in node.finalbody:
            self.visit(stmt)
        self.in_finally -= 1

    def visit_Continue(self, node: ast.Continue) -> None:
        if self.in_finally:
            raise self.refuse(node, "continue in a finally block (3.8)")

    def visit_loop(self, node: Union[ast.For, ast.AsyncFor, ast.While]) -> None:
        finally_depth, self.in_finally = self.in_finally, 0  # a loop inside finally owns its continue
        self.generic_visit(node)
        self.in_finally = finally_depth

    visit_For = visit_AsyncFor = visit_While = visit_loop

    # -- typing -----------------------------------------------------------------------------
    def drop_unused_typing(self, tree: ast.Module) -> None:
        """Names imported from ``typing`` that only annotations used: gone with them."""
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "typing" and node.level == 0:
                kept = [_alias_text(a) for a in node.names if (a.asname or a.name) in self.used]
                if len(kept) < len(node.names):
                    self.replace_statement(node, b"from typing import " + ", ".join(kept).encode() if kept else b"")


def _alias_text(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else "%s as %s" % (alias.name, alias.asname)


def _last_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None
