# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The finder that imports our modules from a bundle of code objects (private).

The package's ``install()`` reads the bundle (see ``plugin_utils/__init__.py``: what it
holds and when it is valid) and runs this module from it, then ``import_from()``.
Kept out of the package's ``__init__.py``, which Ansible's collection loader compiles
from source in every process that loads it, while this module comes compiled in the
bundle itself. Never imports Ansible.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import marshal
import sys
from typing import Any, Dict, List, Optional, Tuple

Bundled = Dict[str, Tuple[str, memoryview]]  # module name -> (its file, its marshalled code object), as served


class BundledLoader(importlib.machinery.SourceFileLoader):
    """The standard loader, handed the module's marshalled code object from the bundle.

    Module names, ``__file__``, ``__spec__`` and tracebacks are as with the standard
    loader (it reads the source for those); only the code object comes from the bundle,
    unmarshalled as the module is executed (a bundle holds modules a worker may never import).
    """

    def __init__(self, fullname: str, path: str, code: memoryview) -> None:
        super().__init__(fullname, path)
        self._code = code

    def get_code(self, fullname: str) -> Any:
        if fullname == self.name:
            return marshal.loads(self._code)
        return super().get_code(fullname)


class BundleFinder:
    """A meta path finder for the modules of our ``packages``: from the bundle while
    their files are unchanged (``fresh``), else as the package's ``_loader`` finds them
    (recorded in ``missed``)."""

    def __init__(self, fresh: Any, packages: Tuple[str, ...], fallback: Any) -> None:
        self._fresh = fresh
        self._packages = packages
        self._fallback = fallback
        self.served: Bundled = {}
        self.missed: List[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname.rpartition(".")[0] not in self._packages:
            return None
        found = self._fresh(fullname)
        if found is not None:
            self.served[fullname] = found
            return importlib.util.spec_from_file_location(fullname, found[0], loader=BundledLoader(fullname, *found))
        self.missed.append(fullname)
        return self._fallback().find_spec(fullname)  # type: ignore[no-any-return]


def import_from(package: str, names: Tuple[str, ...]) -> Tuple[Bundled, List[str]]:
    """Import ``package``'s modules ``names`` (and what they import of ours) from the bundle in use.

    Returns what the bundle served and the names it lacked or held stale (found as
    ``_loader`` finds them): the caller writes a new bundle when any were.
    """
    packages = (package, package.rpartition(".")[0] + ".module_utils.mitogen")
    root = sys.modules[package]
    finder = BundleFinder(root.fresh_code, packages, lambda: root.loader_module().own_finder())
    sys.meta_path.insert(0, finder)
    try:
        for name in names:
            importlib.import_module("%s.%s" % (package, name))
    finally:
        sys.meta_path.remove(finder)
    return finder.served, finder.missed
