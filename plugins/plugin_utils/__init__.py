# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen's controller-only code (private package).

Importing this package, or any module in it, changes nothing outside it. Every
plugin of the collection calls ``install()`` first (idempotent), which does the
two things that do:

- it loads our controller modules (this package's and the core's,
  ``module_utils/mitogen``) with the standard ``SourceFileLoader`` (below);
- it routes ``ActionBase._configure_module`` through ours (``_action.install()``),
  so that actions on our connections hand modules to the in-process runner.

The loader: ``install()`` loads our controller modules with the standard
``SourceFileLoader`` rather than Ansible's collection loader. That loader compiles every collection module
from source on every import and caches no bytecode: for the ~6,000 lines behind
our strategy and connection plugins that was ~60 ms of compiling in every
``ansible-playbook`` run (on the first task's path) and, under a built-in
strategy, in every worker that loads our connection plugin. Loaded this way,
bytecode is cached as for any Python module, under the usual rules
(``__pycache__`` or ``PYTHONPYCACHEPREFIX``; nothing written with
``PYTHONDONTWRITEBYTECODE`` or into a read-only directory). Module names,
``__file__`` and what the modules do are unchanged.

The finder that does it is on ``sys.meta_path`` only while ``install()`` imports
our modules (the plugins import them all anyway): Ansible does not let plugins
leave import hooks of their own ahead of its loader.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from typing import Any, Dict, Optional, Tuple

_CORE = __name__.rpartition(".")[0] + ".module_utils.mitogen"


class _OwnModulesFinder:
    """A meta path finder for the modules directly inside a fixed set of our packages."""

    def __init__(self, directories: Dict[str, str]) -> None:
        self._finders = {
            package: importlib.machinery.FileFinder(
                directory, (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
            )
            for package, directory in directories.items()
        }

    def __repr__(self) -> str:
        return "<ns.mitogen finder for %s>" % ", ".join(sorted(self._finders))

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        finder = self._finders.get(fullname.rpartition(".")[0])
        return finder.find_spec(fullname) if finder is not None else None


def _import_with_bytecode_cache(names: Tuple[str, ...]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    core = os.path.join(os.path.dirname(here), "module_utils", "mitogen")
    finder = _OwnModulesFinder({__name__: here, _CORE: core})
    sys.meta_path.insert(0, finder)
    try:
        for name in names:
            importlib.import_module("%s.%s" % (__name__, name))
    finally:
        sys.meta_path.remove(finder)


_installed = False


def install() -> None:
    """What every ns.mitogen plugin needs before it imports our modules (idempotent).

    Loads everything the strategies, connection and action plugins import (the
    core included) with bytecode caching, then installs the ``ActionBase`` seam.
    """
    global _installed
    if _installed:
        return
    _import_with_bytecode_cache(("_connection", "_strategy", "_action"))
    importlib.import_module(__name__ + "._action").install()
    _installed = True
