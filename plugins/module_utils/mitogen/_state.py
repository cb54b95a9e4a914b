# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process state of this context, in one holder (private module).

Owns: ``STATE``, the one ``ContextState`` of this process. ``_child.main`` fills
it once, as the context starts; the code that runs calls in a target (``_files``,
``_target``, ``_bootstrap``, ``_isolation``) reads it from here rather than from
``_child``'s globals. In a process that is not a child context (the controller) it
stays empty: ``router`` is None and the start-up directory and environment are
empty, which readers take as "this process's current ones".

Importing this module has no effect but making the empty holder; it imports no
other core module at run time (no import cycle can go through it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, FrozenSet, Optional

if TYPE_CHECKING:  # annotations only
    from ._router import Router
    from ._service import ServiceRegistry


class ContextState:
    """What a child context's process knows about itself (see the module docstring).

    - ``router``: this context's router (None outside a child context);
    - ``services``: its service registry;
    - ``payload``: the boot payload this interpreter was started with, and
      ``boot_modules`` the modules in it: an intermediary starts its own children
      with them (``_payload.payload()``), having no source tree to build one from;
    - ``start_cwd``, ``start_env``: the working directory and environment the
      interpreter started with; commands run for Ansible start from these, whatever
      earlier calls changed.
    """

    __slots__ = ("router", "services", "payload", "boot_modules", "start_cwd", "start_env")

    def __init__(self) -> None:
        self.router: Optional[Router] = None
        self.services: Optional[ServiceRegistry] = None
        self.payload: Optional[bytes] = None
        self.boot_modules: FrozenSet[str] = frozenset()
        self.start_cwd = ""
        self.start_env: Dict[str, str] = {}

    def __repr__(self) -> str:
        return "ContextState(router=%r, start_cwd=%r, payload=%s)" % (
            self.router,
            self.start_cwd,
            "%d bytes" % len(self.payload) if self.payload is not None else None,
        )


#: this process's state (filled by ``_child.main`` in a child context)
STATE = ContextState()
