# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.podman: one persistent interpreter per container account, through ``podman exec``."""

from __future__ import annotations

DOCUMENTATION = r"""
name: podman
short_description: Run tasks in a podman container in a persistent Python interpreter
description:
  - Like P(containers.podman.podman#connection), but starts one Python interpreter in
    the container (C(podman exec -i)) and keeps it for the whole run; every command,
    file transfer and module is then one framed RPC to it, instead of one
    C(podman exec) and one Python per step.
  - Accepts the variables and settings of P(containers.podman.podman#connection). The
    command line is C(podman [podman_extra_args] exec -i [--user remote_user] container
    <interpreter>); the container must be running.
  - podman asks for no password; become (sudo, su, ...) inside the container works as
    on an ssh host, on top of this interpreter.
  - With O(mitogen_via), the container runs on another inventory host, reached through
    that host's own connection; module sources are cached there once for every
    container behind it.
  - Errors name the container and the engine - a missing podman, a container that does
    not exist, one that is not running, one without Python, a user it lacks.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.2.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  remote_addr:
    description: The name or id of the container.
    default: inventory_hostname
    type: string
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  remote_user:
    description:
      - The user to run as in the container (C(podman exec --user)); when unset, the
        container's own user.
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
  podman_extra_args:
    description:
      - Extra arguments for podman, before C(exec) (its global options, such as
        C(--url), C(--connection) or C(--root)), split as a shell would.
    type: string
    default: ''
    ini:
      - section: defaults
        key: podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
    vars:
      - name: ansible_podman_extra_args
  podman_executable:
    description:
      - The podman client to run (on the machine that runs it - the controller, or the
        O(mitogen_via) host). O(mitogen_podman_path) wins when set.
    type: string
    default: podman
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
    vars:
      - name: ansible_podman_executable
  mitogen_podman_path:
    description:
      - The original Mitogen's path of C(podman); when set, wins over O(podman_executable).
    type: string
    vars:
      - name: mitogen_podman_path
"""

EXAMPLES = r"""
# inventory
# [containers]
# web1 ansible_connection=ns.mitogen.podman ansible_host=web1-container
# [remote_containers]
# db1 ansible_connection=ns.mitogen.podman mitogen_via=dockerhost1
"""


from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._containers import ContainerConnection


class Connection(ContainerConnection):
    """ns.mitogen through ``podman exec``."""

    method = "podman"
    executable_option = "podman_executable"
    extra_args_option = "podman_extra_args"
