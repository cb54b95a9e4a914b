# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.kubectl: tasks in a Kubernetes pod, through kubectl exec, in a persistent interpreter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: kubectl
short_description: Run tasks in a Kubernetes pod (kubectl exec), in a persistent interpreter
description:
  - Like P(kubernetes.core.kubectl#connection), with its options and their variables
    and environment variables, but the pod's Python is started once per run with
    C(kubectl [options] exec -i POD [-c CONTAINER] --) and every command, file copy and
    module runs there as an RPC.
  - Commands run as the user the container runs as; C(ansible_user) has no effect, as
    with the counterpart.
  - An unknown pod, namespace, container or context, a completed pod, refused
    credentials, a missing C(kubectl) or a pod without Python fails saying which.
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
  kubectl_pod:
    description: The pod; unset - O(remote_addr) (C(ansible_host), else the inventory name).
    type: string
    env:
      - name: K8S_AUTH_POD
    vars:
      - name: ansible_kubectl_pod
  kubectl_container:
    description: The container in the pod (C(-c)), needed when it has more than one.
    type: string
    env:
      - name: K8S_AUTH_CONTAINER
    vars:
      - name: ansible_kubectl_container
  kubectl_namespace:
    description: The pod's namespace (C(-n)).
    type: string
    env:
      - name: K8S_AUTH_NAMESPACE
    vars:
      - name: ansible_kubectl_namespace
  kubectl_extra_args:
    description: More options for C(kubectl), before C(exec), split on spaces as the counterpart does.
    type: string
    env:
      - name: K8S_AUTH_EXTRA_ARGS
    vars:
      - name: ansible_kubectl_extra_args
  kubectl_local_env_vars:
    description: Environment variables set for the C(kubectl) process.
    type: dict
    vars:
      - name: ansible_kubectl_local_env_vars
  kubectl_kubeconfig:
    description: The kubeconfig file (C(--kubeconfig)); a dict is written to a private temporary file.
    type: raw
    env:
      - name: K8S_AUTH_KUBECONFIG
    vars:
      - name: ansible_kubectl_kubeconfig
      - name: ansible_kubectl_config
  kubectl_context:
    description: The kubeconfig context (C(--context)).
    type: string
    env:
      - name: K8S_AUTH_CONTEXT
    vars:
      - name: ansible_kubectl_context
  kubectl_host:
    description: The API server's URL (C(--server)).
    type: string
    env:
      - name: K8S_AUTH_HOST
      - name: K8S_AUTH_SERVER
    vars:
      - name: ansible_kubectl_host
      - name: ansible_kubectl_server
  kubectl_username:
    description: The user for basic authentication (C(--username)); also typed at C(Please enter Username:).
    type: string
    env:
      - name: K8S_AUTH_USERNAME
    vars:
      - name: ansible_kubectl_username
      - name: ansible_kubectl_user
  kubectl_password:
    description: The password for basic authentication, typed at C(Please enter Password:) on C(kubectl)'s stdin, never on its command line.
    type: string
    env:
      - name: K8S_AUTH_PASSWORD
    vars:
      - name: ansible_kubectl_password
  kubectl_token:
    description: A bearer token (C(--token)).
    type: string
    env:
      - name: K8S_AUTH_TOKEN
      - name: K8S_AUTH_API_KEY
    vars:
      - name: ansible_kubectl_token
      - name: ansible_kubectl_api_key
  client_cert:
    description: The client certificate file (C(--client-certificate)).
    type: path
    env:
      - name: K8S_AUTH_CERT_FILE
    vars:
      - name: ansible_kubectl_cert_file
      - name: ansible_kubectl_client_cert
  client_key:
    description: The client key file (C(--client-key)).
    type: path
    env:
      - name: K8S_AUTH_KEY_FILE
    vars:
      - name: ansible_kubectl_key_file
      - name: ansible_kubectl_client_key
  ca_cert:
    description: The CA certificate file (C(--certificate-authority)).
    type: path
    env:
      - name: K8S_AUTH_SSL_CA_CERT
    vars:
      - name: ansible_kubectl_ssl_ca_cert
      - name: ansible_kubectl_ca_cert
  validate_certs:
    description: Whether the server's certificate is checked (false - C(--insecure-skip-tls-verify=true)).
    type: boolean
    env:
      - name: K8S_AUTH_VERIFY_SSL
    vars:
      - name: ansible_kubectl_verify_ssl
      - name: ansible_kubectl_validate_certs
  mitogen_kubectl_path:
    description: The C(kubectl) program, a name looked up in C(PATH) or a path.
    type: string
    default: kubectl
    vars:
      - name: mitogen_kubectl_path
"""

EXAMPLES = r"""
# inventory: a pod in namespace "web" of the cluster of context "prod"
# web-0 ansible_connection=ns.mitogen.kubectl ansible_kubectl_namespace=web ansible_kubectl_context=prod

- name: Run in the pod
  hosts: web-0
  tasks:
    - name: Its hostname
      ansible.builtin.command: hostname
      changed_when: false
"""

import hashlib
import json
import os
import tempfile
from typing import Any, Dict

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _options
from ansible_collections.ns.mitogen.plugins.plugin_utils._engine_connection import EngineConnectionBase


class Connection(EngineConnectionBase):
    """ns.mitogen in a Kubernetes pod, through kubectl exec."""

    method = "kubectl"
    user_option = ""  # kubectl exec runs as the container's user

    _SPEC_KEYS = (
        ("kubectl_container", "kube_container"),
        ("kubectl_namespace", "namespace"),
        ("kubectl_context", "context"),
        ("kubectl_host", "server"),
        ("kubectl_username", "username"),
        ("kubectl_password", "password"),
        ("kubectl_token", "token"),
        ("client_cert", "client_cert"),
        ("client_key", "client_key"),
        ("ca_cert", "ca_cert"),
    )

    def _container(self) -> str:
        return str(self.first_set("kubectl_pod") or super()._container())

    def _engine_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {"method": "kubectl", "container": self._container()}
        for option, key in self._SPEC_KEYS:
            value = self.first_set(option)
            if value:
                spec[key] = value
        kubeconfig = _options.native(self.get_option("kubectl_kubeconfig"))
        if isinstance(kubeconfig, dict):
            spec["kubeconfig"] = _kubeconfig_file(kubeconfig)
        elif kubeconfig:
            spec["kubeconfig"] = str(kubeconfig)
        verify = self.get_option("validate_certs")
        if verify not in (None, ""):
            spec["validate_certs"] = boolean(verify)
        extra = self.first_set("kubectl_extra_args")
        if extra:
            spec["extra_args"] = extra.split(" ")
        env = _options.native(self.get_option("kubectl_local_env_vars"))
        if env:
            spec["env"] = {str(k): str(v) for k, v in env.items()}
        path = self.first_set("mitogen_kubectl_path")
        if path:
            spec["engine_path"] = path
        return spec


def _kubeconfig_file(config: Dict[str, Any]) -> str:
    """A kubeconfig given as a dict, in a private file named after its content (kept for the run)."""
    text = json.dumps(config, sort_keys=True)
    path = os.path.join(
        tempfile.gettempdir(), "ns-mitogen-kubeconfig-%d-%s.json" % (os.getuid(), hashlib.sha256(text.encode()).hexdigest()[:16])
    )
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as fp:
            fp.write(text)
        os.replace(tmp, path)
    return path
