# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regular expressions compiled when first used, not when their module loads (private).

Under a built-in strategy every Ansible worker loads our modules afresh, and compiling
a module's patterns at import cost each worker ~0.1 ms apiece for patterns most tasks
never use (a ``mitogen_via`` value, a password prompt, a stale mux file). A
``LazyPattern`` compiles on its first attribute access (``match``, ``search``, ``sub``
...) and then behaves as the compiled pattern. Our strategies call ``compile_all()``
in the main process before workers fork, so that their workers inherit every pattern
compiled, as when the patterns were module constants. Patterns a worker uses for every
task stay plain ``re.compile`` constants. A pattern whose text is itself worked out
(``fnmatch.translate``) is given as a function of no arguments, called on first use
too. Never imports Ansible.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional

_ALL: List["LazyPattern"] = []


class LazyPattern:
    """``re.compile(pattern, flags)``, done on first use (``pattern``: the text, or a function returning it)."""

    __slots__ = ("_args", "_compiled")

    def __init__(self, pattern: Any, flags: int = 0) -> None:
        self._args = (pattern, flags)
        self._compiled: Optional[re.Pattern] = None  # type: ignore[type-arg]
        _ALL.append(self)

    def compiled(self) -> "re.Pattern[Any]":
        if self._compiled is None:
            pattern, flags = self._args
            self._compiled = re.compile(pattern() if callable(pattern) else pattern, flags)
        return self._compiled

    def __getattr__(self, name: str) -> Any:
        return getattr(self.compiled(), name)


def compile_all() -> None:
    """Compile every pattern made so far (in a process about to fork workers)."""
    for pattern in _ALL:
        pattern.compiled()
