# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ns.mitogen connection stands for the connection name a host sets (private).

Owns: ``REDIRECTS`` and ``redirect()``, used by the strategies (a host on ``ssh`` runs
on ``ns.mitogen.ssh``) and by ``_via`` (an intermediary on ``ssh`` is connected by
``ns.mitogen.ssh``). Never imports Ansible or our other modules.
"""

from __future__ import annotations

from typing import Optional

REDIRECTS = {
    "ssh": "ns.mitogen.ssh",
    "ansible.builtin.ssh": "ns.mitogen.ssh",
    "smart": "ns.mitogen.ssh",
    "local": "ns.mitogen.local",
    "ansible.builtin.local": "ns.mitogen.local",
    # the original Mitogen's own connection names, as its strategies knew them
    "mitogen_sudo": "ns.mitogen.sudo",
    "mitogen_su": "ns.mitogen.su",
    "mitogen_doas": "ns.mitogen.doas",
    # containers by exec (podman, docker, buildah): the counterparts, their old bare names (ansible 2.9) and the original's
    "containers.podman.podman": "ns.mitogen.podman",
    "podman": "ns.mitogen.podman",
    "mitogen_podman": "ns.mitogen.podman",
    "containers.podman.buildah": "ns.mitogen.buildah",
    "buildah": "ns.mitogen.buildah",
    "mitogen_buildah": "ns.mitogen.buildah",
    "community.docker.docker": "ns.mitogen.docker",
    "community.general.docker": "ns.mitogen.docker",
    "docker": "ns.mitogen.docker",
    "mitogen_docker": "ns.mitogen.docker",
    # containers by their engine: the counterparts, the bare names, the original's
    "mitogen_setns": "ns.mitogen.setns",
    "mitogen_machinectl": "ns.mitogen.machinectl",
    "community.general.machinectl": "ns.mitogen.machinectl",
    "machinectl": "ns.mitogen.machinectl",
    "mitogen_lxc": "ns.mitogen.lxc",
    "community.general.lxc": "ns.mitogen.lxc",
    "lxc": "ns.mitogen.lxc",
    "mitogen_lxd": "ns.mitogen.lxd",
    "community.general.lxd": "ns.mitogen.lxd",
    "lxd": "ns.mitogen.lxd",
    "mitogen_incus": "ns.mitogen.incus",
    "community.general.incus": "ns.mitogen.incus",
    "mitogen_jail": "ns.mitogen.jail",
    "community.general.jail": "ns.mitogen.jail",
    "jail": "ns.mitogen.jail",
    "mitogen_kubectl": "ns.mitogen.kubectl",
    "kubernetes.core.kubectl": "ns.mitogen.kubectl",
    "kubectl": "ns.mitogen.kubectl",
    "community.kubernetes.kubectl": "ns.mitogen.kubectl",
}


def redirect(connection: Optional[str]) -> Optional[str]:
    """Our connection for a built-in one we replace, else None."""
    return REDIRECTS.get(str(connection)) if connection is not None else None
