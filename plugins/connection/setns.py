# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.setns: tasks in a local container, entered by its init process's namespaces, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: setns
short_description: Run tasks in a container by joining its namespaces (setns), in a persistent interpreter
description:
  - Enters a container on the machine that runs the connection (the controller, or the
    intermediary of C(mitogen_via)) directly, by joining the namespaces of its init
    process with C(setns(2)), and runs the container's Python there once per run - the
    original Mitogen's C(setns) method. Only the engine's tool is run, to find the init
    process (O(mitogen_kind) says which); commands, files and modules then travel over
    the interpreter's own pipes, with no engine process in between.
  - The container's user, IPC, UTS, network, PID, mount and cgroup namespaces are joined
    (each only where it differs), its root and working directory taken, and the
    interpreter gets the container's C(PATH), C(LANG), C(LC_*), C(TERM) and the user's
    C(HOME).
  - Needs root where it runs; a stopped or unknown container, a missing tool, or a
    container without Python fails with a message saying which.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.3.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  remote_addr:
    description: The container's name as its engine knows it.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  remote_user:
    description: The user in the container the tasks run as (default - root).
    type: string
    vars:
      - name: ansible_user
  mitogen_kind:
    description:
      - Which engine knows the container, and so how its init process is found -
        V(docker) or V(podman) (C(inspect -f '{{.State.Pid}}')), V(lxc) (C(lxc-info -pH)),
        V(machinectl) (C(machinectl show -p Leader)).
    type: string
    default: docker
    choices: [docker, podman, lxc, machinectl]
    vars:
      - name: mitogen_kind
  mitogen_docker_path:
    description: The C(docker) program (O(mitogen_kind=docker)), a name looked up in C(PATH) or a path.
    type: string
    default: docker
    vars:
      - name: mitogen_docker_path
  mitogen_podman_path:
    description: The C(podman) program (O(mitogen_kind=podman)), a name looked up in C(PATH) or a path.
    type: string
    default: podman
    vars:
      - name: mitogen_podman_path
  mitogen_lxc_info_path:
    description: The C(lxc-info) program (O(mitogen_kind=lxc)).
    type: string
    default: lxc-info
    vars:
      - name: mitogen_lxc_info_path
  mitogen_machinectl_path:
    description: The C(machinectl) program (O(mitogen_kind=machinectl)).
    type: string
    default: machinectl
    vars:
      - name: mitogen_machinectl_path
"""

EXAMPLES = r"""
# inventory: web1 is a podman container on the controller
# web1 ansible_connection=ns.mitogen.setns mitogen_kind=podman

- name: Run in the container
  hosts: web1
  tasks:
    - name: Its hostname
      ansible.builtin.command: hostname
      changed_when: false
"""

from typing import Any, Dict

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._engine_connection import EngineConnectionBase


class Connection(EngineConnectionBase):
    """ns.mitogen in a local container, by setns(2)."""

    method = "setns"
    user_option = "remote_user"

    def _engine_spec(self) -> Dict[str, Any]:
        kind = str(self.first_set("mitogen_kind") or "docker")
        spec: Dict[str, Any] = {"method": "setns", "container": self._container(), "kind": kind}
        tool = self.first_set("mitogen_%s_path" % {"lxc": "lxc_info"}.get(kind, kind))
        if tool:
            spec["tool_path"] = tool
        user = self._remote_user()
        if user:
            spec["username"] = user
        return spec
