# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.docker: one persistent interpreter per container account, through ``docker exec``."""

from __future__ import annotations

DOCUMENTATION = r"""
name: docker
short_description: Run tasks in a docker container in a persistent Python interpreter
description:
  - Like P(community.docker.docker#connection), but starts one Python interpreter in
    the container (C(docker exec -i)) and keeps it for the whole run; every command,
    file transfer and module is then one framed RPC to it, instead of one
    C(docker exec) and one Python per step.
  - Accepts the variables and settings of P(community.docker.docker#connection). The
    command line is C(docker [docker_extra_args] exec -i [-u remote_user] [-e ...]
    [-w working_dir] [--privileged] container <interpreter>); the container must be
    running. Any engine with a docker-compatible CLI and API works (podman's API
    service too, with C(DOCKER_HOST)).
  - docker asks for no password; become (sudo, su, ...) inside the container works as
    on an ssh host, on top of this interpreter.
  - With O(mitogen_via), the container runs on another inventory host, reached through
    that host's own connection; module sources are cached there once for every
    container behind it.
  - Errors name the container and the engine - a missing docker client, a container
    that does not exist, one that is not running, one without Python, a user it lacks.
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
      - name: ansible_docker_host
  remote_user:
    description:
      - The user to run as in the container (C(docker exec -u)); when unset, the
        container's own user.
    type: string
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
      - name: ansible_docker_user
    keyword:
      - name: remote_user
  docker_extra_args:
    description:
      - Extra arguments for docker, before C(exec) (its global options, such as
        C(--host) or C(--context)), split as a shell would.
    type: string
    default: ''
    ini:
      - section: docker_connection
        key: extra_cli_args
    vars:
      - name: ansible_docker_extra_args
  container_timeout:
    description:
      - As P(community.docker.docker#connection)'s - how long to wait for the container.
        Here it bounds the start of the interpreter, together with O(timeout) (the larger
        of the two applies); a running interpreter answers each task without a new
        C(docker exec).
    type: integer
    default: 10
    env:
      - name: ANSIBLE_TIMEOUT
      - name: ANSIBLE_DOCKER_TIMEOUT
    ini:
      - key: timeout
        section: defaults
      - key: timeout
        section: docker_connection
    vars:
      - name: ansible_docker_timeout
  extra_env:
    description:
      - Environment variables for the interpreter and everything it runs
        (C(docker exec -e)). Values must be strings - quote booleans and numbers.
    type: dict
    vars:
      - name: ansible_docker_extra_env
  working_dir:
    description:
      - The directory the interpreter starts in (C(docker exec -w)); commands run there
        unless a task says otherwise.
    type: string
    env:
      - name: ANSIBLE_DOCKER_WORKING_DIR
    ini:
      - key: working_dir
        section: docker_connection
    vars:
      - name: ansible_docker_working_dir
  privileged:
    description:
      - Whether the interpreter runs with extended privileges (C(docker exec --privileged)).
    type: bool
    default: false
    env:
      - name: ANSIBLE_DOCKER_PRIVILEGED
    ini:
      - key: privileged
        section: docker_connection
    vars:
      - name: ansible_docker_privileged
  mitogen_docker_path:
    description:
      - The original Mitogen's path of C(docker); when unset, C(docker) on PATH.
    type: string
    vars:
      - name: mitogen_docker_path
"""

EXAMPLES = r"""
# inventory
# [containers]
# app1 ansible_connection=ns.mitogen.docker ansible_host=app1 ansible_docker_extra_args="--host tcp://10.0.0.5:2375"
"""

from typing import List

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils._containers import ContainerConnection, env_args


class Connection(ContainerConnection):
    """ns.mitogen through ``docker exec``."""

    method = "docker"
    extra_args_option = "docker_extra_args"

    def _exec_args(self) -> List[str]:
        args = env_args(self.get_option("extra_env"), "ns.mitogen.docker")
        if self.get_option("working_dir"):
            args += ["-w", str(self.get_option("working_dir"))]
        if self.get_option("privileged"):
            args.append("--privileged")
        return args

    def _connect_timeout(self) -> int:
        return max(self._timeout(), int(self.get_option("container_timeout") or 0))
