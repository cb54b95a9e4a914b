# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every way to start a child, by its method name (private module).

Owns: ``METHODS`` (a spec's ``method`` -> its transport class) and ``make``, which
checks a spec and gives its transport. Each transport lives in a module of its own
(``_transports``: local, ssh; ``_become_methods``: sudo, su, doas;
``_become_plugin``: any become plugin the controller judges; ``_containers``:
podman, docker, buildah; ``_setns``: setns; ``_engines``: lxc, lxd, incus, jail,
kubectl); a new one is a class
there and one entry here, so no module registers anything when imported.
"""

from __future__ import annotations

from typing import Any, Dict, Type

from ._become_methods import Doas, Su, Sudo
from ._become_plugin import PluginBecome
from ._containers import Buildah, Docker, Podman
from ._engines import Incus, Jail, Kubectl, Lxc, Lxd
from ._setns import Setns
from ._transports import Local, SpecError, Ssh, Transport

METHODS: Dict[str, Type[Transport]] = {
    cls.method: cls
    for cls in (
        Local,
        Ssh,
        Sudo,
        Su,
        Doas,
        PluginBecome,
        Setns,
        Lxc,
        Lxd,
        Incus,
        Jail,
        Kubectl,
        Podman,
        Docker,
        Buildah,
    )  # type: ignore[type-abstract]
}


def make(spec: Any) -> Transport:
    """The transport for ``spec``; raise ``SpecError`` if the spec is malformed."""
    if not isinstance(spec, dict):
        raise SpecError("a connection spec must be a dict, not %r" % type(spec).__name__)
    cls = METHODS.get(spec.get("method"))  # type: ignore[arg-type]
    if cls is None:
        raise SpecError("unknown connection method %r (known: %s)" % (spec.get("method"), ", ".join(sorted(METHODS))))
    return cls(spec)
