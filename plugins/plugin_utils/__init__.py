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

Where Python keeps no bytecode (``PYTHONDONTWRITEBYTECODE``, a read-only
collection), the loader keeps our code objects in a private per-user cache
instead (``_loader``, which says how and why that respects those settings).

``install()`` loads what the connection and action plugins need; the strategies
add ``_strategy`` (``install("_strategy")``), and what only the multiplexer process
runs is loaded when first needed (``load()``), so that a worker under a built-in
strategy imports only the client side.

The finder that does it is on ``sys.meta_path`` only while ``install()`` or
``load()`` imports our modules: Ansible does not let plugins leave import hooks of
their own ahead of its loader.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any


def _loader() -> Any:
    """Our ``_loader`` module, itself loaded with the standard loader (bytecode cached)."""
    name = __name__ + "._loader"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_loader.py")
        )
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s from %s" % (name, os.path.dirname(os.path.abspath(__file__))))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def load(name: str) -> Any:
    """This package's module ``name`` (e.g. ``"_mux_server"``), loaded as ``install()`` loads them.

    For what a plugin needs only sometimes (imported lazily, inside a function): it
    gets the same bytecode caching as the rest.
    """
    module = sys.modules.get("%s.%s" % (__name__, name))
    if module is None:
        _loader().import_modules((name,))
        module = sys.modules["%s.%s" % (__name__, name)]
    return module


_installed = False


def install(*extra: str) -> None:
    """What every ns.mitogen plugin needs before it imports our modules (idempotent).

    Loads what the connection and action plugins import (the core included) with
    bytecode caching, then installs the ``ActionBase`` seam. ``extra``: more of this
    package's modules to load so (the strategies add ``"_strategy"``); what only the
    multiplexer process needs is not loaded here (see ``load()``), as every Ansible
    worker under a built-in strategy runs this again.
    """
    global _installed
    if not _installed:
        _loader().import_modules(("_connection", "_action"))
        importlib.import_module(__name__ + "._action").install()
        _installed = True
    for name in extra:
        load(name)
