# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.buildah: one persistent interpreter per working container account, through ``buildah run``."""

from __future__ import annotations

DOCUMENTATION = r"""
name: buildah
short_description: Run tasks in a buildah working container in a persistent Python interpreter
description:
  - Like P(containers.podman.buildah#connection), but starts one Python interpreter in
    the working container (C(buildah run container -- <interpreter>)) and keeps it for
    the whole run; every command, file transfer and module is then one framed RPC to
    it, instead of one C(buildah run) and one Python per step. Files are written
    through that interpreter, not with C(buildah copy).
  - Accepts the variables of P(containers.podman.buildah#connection). Unlike it,
    O(remote_user) runs the interpreter as that user (C(buildah run --user)) and does
    not change the container's configured user (C(buildah config --user)), which
    would end up in the image.
  - buildah asks for no password; become (sudo, su, ...) inside the container works as
    on an ssh host, on top of this interpreter.
  - Errors name the container and the engine - a missing buildah, a working container
    that does not exist, one without Python, a user it lacks.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.2.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  remote_addr:
    description: The name or id of the working container.
    default: inventory_hostname
    type: string
    vars:
      - name: inventory_hostname
      - name: ansible_host
  remote_user:
    description:
      - The user to run as in the container (C(buildah run --user)); when unset, the
        container's configured user.
    type: string
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
    keyword:
      - name: remote_user
  mitogen_buildah_path:
    description:
      - The original Mitogen's path of C(buildah); when unset, C(buildah) on PATH.
    type: string
    vars:
      - name: mitogen_buildah_path
"""

EXAMPLES = r"""
# inventory
# [build]
# builder ansible_connection=ns.mitogen.buildah ansible_host=working-container
"""


from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._containers import ContainerConnection


class Connection(ContainerConnection):
    """ns.mitogen through ``buildah run``."""

    method = "buildah"
