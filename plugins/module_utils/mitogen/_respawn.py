# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``respawn_module`` for modules run in the interpreter or in a fork of the zygote (private).

Owns: ``install()``, which makes ansible's ``respawn_module`` work without AnsiballZ.

A module that needs a library only another Python has (``apt``'s and ``dnf``'s
bindings live in the system Python) calls ``respawn_module(interpreter)``: ansible
pipes into ``interpreter --`` a small program that puts the AnsiballZ zip
(``_modlib_path``) on ``sys.path`` and runs the module again, and exits with its
status. Here there is no zip. ``install()`` puts a finder on ``sys.meta_path`` that,
when ``ansible.module_utils.common.respawn`` is imported (before any module's ``from
... import respawn_module`` binds the name), replaces its ``respawn_module`` with
``respawn_module`` here: the same checks and exit, and a program (``payload()``)
that carries the module's own source and every ``ansible``/``ansible_collections``
module this process has (once it has what the module's source imports), serves
them from memory to the new interpreter ahead of anything installed there, and runs
the module as ansible's own respawn program does (``_respawned`` set, the same
arguments and serialization profile). The program (~1 MB) is written to the new
interpreter while it reads (ansible writes its few KB into the pipe first).
Nothing is written to disk. The new interpreter's output is the module's, as under
AnsiballZ (its fds 1 and 2 are the run's).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any, Dict, Optional, Tuple

#: module -> the function replaced there
_BUILDERS = {"ansible.module_utils.common.respawn": "respawn_module"}
_TREES = ("ansible", "ansible_collections")

_PROGRAM = """
import sys

SOURCES = %(sources)r
PROFILE = %(profile)r
ARGS = %(args)r
MODULE_FQN = %(module_fqn)r
MODLIB_PATH = %(modlib_path)r


def _nsm_respawn_boot():
    import importlib.machinery

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name not in SOURCES:
                return None
            return importlib.machinery.ModuleSpec(name, self, origin=SOURCES[name][1], is_package=SOURCES[name][0])

        def create_module(self, spec):
            return None

        def get_source(self, name):
            found = SOURCES.get(MODULE_FQN if name == "__main__" else name)
            return None if found is None else found[2].decode("utf-8")

        def is_package(self, name):
            return SOURCES[name][0]

        def get_code(self, name):
            return compile(SOURCES[name][2], SOURCES[name][1], "exec", dont_inherit=True)

        def exec_module(self, module):
            name = module.__spec__.name
            if SOURCES[name][0]:
                module.__path__ = []
            module.__file__ = module.__spec__.origin
            exec(self.get_code(name), module.__dict__)

    sys.meta_path.insert(0, Finder())


_nsm_respawn_boot()
if __name__ == "__main__":
    if PROFILE is not None:
        from ansible.module_utils._internal._ansiballz import _loader

        _loader.run_module(
            json_params=ARGS,
            profile=PROFILE,
            module_fqn=MODULE_FQN,
            modlib_path=MODLIB_PATH,
            extensions={},
            init_globals=dict(_respawned=True),
        )
    else:
        import runpy

        from ansible.module_utils import basic

        basic._ANSIBLE_ARGS = ARGS
        runpy.run_module(
            MODULE_FQN,
            init_globals=dict(_respawned=True, _module_fqn=MODULE_FQN, _modlib_path=MODLIB_PATH),
            run_name="__main__",
            alter_sys=True,
        )
"""


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Lets the finder that has a builder module load it, then replaces its builder."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in _BUILDERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Patching(spec.loader)
                return spec
        return None


class _Patching(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        patch(module)

    def get_source(self, fullname: str) -> Any:
        return self.loader.get_source(fullname) if hasattr(self.loader, "get_source") else None


_FINDER = _PatchOnImport()


def install() -> None:
    """Make ``respawn_module`` work in this process (idempotent; modules already imported are patched)."""
    for name in _BUILDERS:
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def patch(module: Any) -> None:
    attribute = _BUILDERS.get(module.__name__)
    if attribute is not None and hasattr(module, attribute):
        setattr(module, attribute, respawn_module)


def respawn_module(interpreter_path: str) -> None:
    """ansible's ``respawn_module``, with the program below (see the module docstring)."""
    import subprocess

    if hasattr(sys.modules["__main__"], "_respawned"):
        raise Exception("module has already been respawned")
    program = payload().encode("utf-8")
    # as ansible's own respawn_module (subprocess, not run_command: the module's stdio is the child's)
    rc = subprocess.run([interpreter_path, "--"], input=program, check=False).returncode  # pylint: disable=ansible-bad-function
    sys.exit(rc)  # pylint: disable=ansible-bad-function


def payload() -> str:
    """The program that runs the current module again in another interpreter (see the module docstring)."""
    main = sys.modules["__main__"]
    module_fqn = str(main._module_fqn)
    basic: Any = sys.modules["ansible.module_utils.basic"]
    args = basic._ANSIBLE_ARGS
    if isinstance(args, str):
        args = args.encode("utf-8", "surrogateescape")
    profile = getattr(basic, "_ANSIBLE_PROFILE", None)  # 2.19+; the older program runs without one
    return _PROGRAM % dict(
        sources=_sources(module_fqn),
        profile=profile,
        args=bytes(args).strip() if profile is None else bytes(args),
        module_fqn=module_fqn,
        modlib_path=str(getattr(main, "_modlib_path", "")),
    )


def _sources(module_fqn: str) -> Dict[str, Tuple[bool, str, bytes]]:
    """Every allowed module this process has, the running module and its parent packages."""
    from ._importer import Importer
    from ._zygote import fetch_run_closure

    importer = next((f for f in sys.meta_path if isinstance(f, Importer)), None)
    own = next((f for f in sys.meta_path if getattr(f, "name", None) == module_fqn and hasattr(f, "source")), None)
    source = getattr(getattr(own, "source", None), "data", None)
    if not isinstance(source, bytes):
        raise RuntimeError("ns.mitogen: respawn_module: the source of %s is not at hand" % module_fqn)
    found: Dict[str, Tuple[bool, str, bytes]] = {}
    if importer is not None:
        profile = getattr(sys.modules.get("ansible.module_utils.basic"), "_ANSIBLE_PROFILE", None)
        fetch_run_closure(importer, module_fqn, source, profile)
        for name, (is_pkg, filename, text, _related) in list(importer.cache.items()):
            if text is not None and name.split(".")[0] in _TREES:
                found[name] = (bool(is_pkg), filename, bytes(text))
    parts = module_fqn.split(".")
    for i in range(1, len(parts)):
        found.setdefault(".".join(parts[:i]), (True, "<ns.mitogen respawn>/" + ".".join(parts[:i]), b""))
    found[module_fqn] = (False, str(getattr(own, "filename", "<ns.mitogen respawn>/" + module_fqn)), source)
    return found
