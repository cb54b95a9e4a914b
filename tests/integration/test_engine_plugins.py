"""The connection plugins into containers by their engine read their counterparts' variables.

ns.mitogen.setns, machinectl, lxc, lxd, incus, jail and kubectl: each host's variables
(the counterpart plugin's ``ansible_*`` names, kubernetes.core's ``K8S_AUTH_*``
environment variables, the original product's ``mitogen_kind`` and
``mitogen_*_path``) must give the core spec asserted here, read through
``ns.mitogen.mitogen_get_stack`` (which connects nothing). Under ``ns.mitogen.linear``,
hosts on the counterpart names (``community.general.lxd``, ``kubernetes.core.kubectl``,
bare ``lxc``, the original's ``mitogen_setns``, ...) are switched to ours; and the
original names a plugin reads give no "has no effect" warning there.
"""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from tests.integration.test_ansible_connection import run_playbook

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ns.mitogen.mitogen_get_stack:
      register: stack
    - ansible.builtin.copy:
        content: "{{ stack.result | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""

# host -> (connection, variables, what the login spec must hold)
HOSTS: Dict[str, Any] = {
    "setns1": (
        "setns",
        "ansible_host=box1 mitogen_kind=podman mitogen_podman_path=/opt/podman ansible_user=app",
        {"method": "setns", "kind": "podman", "container": "box1", "tool_path": "/opt/podman", "username": "app"},
    ),
    "setns2": (
        "setns",
        "mitogen_kind=lxc mitogen_lxc_info_path=/x/lxc-info",
        {"kind": "lxc", "container": "setns2", "tool_path": "/x/lxc-info"},
    ),
    "setns3": ("setns", "", {"kind": "docker", "container": "setns3"}),
    "mach1": (
        "machinectl",
        "mitogen_machinectl_path=/bin/machinectl ansible_user=dev",
        {"method": "setns", "kind": "machinectl", "container": "mach1", "tool_path": "/bin/machinectl", "username": "dev"},
    ),
    "lxc1": (
        "lxc",
        "ansible_lxc_host=c1 mitogen_lxc_attach_path=/usr/bin/lxc-attach",
        {"method": "lxc", "container": "c1", "engine_path": "/usr/bin/lxc-attach"},
    ),
    "lxd1": (
        "lxd",
        "ansible_lxd_host=i1 ansible_lxd_remote=far ansible_lxd_project=p1 ansible_user=web lxd_become_method=/usr/bin/su",
        {"method": "lxd", "container": "i1", "remote": "far", "project": "p1", "username": "web", "become_exe": "/usr/bin/su"},
    ),
    "incus1": (
        "incus",
        "ansible_incus_host=i2 ansible_incus_remote=r2 ansible_incus_executable=/opt/incus",
        {"method": "incus", "container": "i2", "remote": "r2", "project": "default", "engine_path": "/opt/incus"},
    ),
    "jail1": ("jail", "ansible_jail_host=www ansible_jail_user=www", {"method": "jail", "container": "www", "username": "www"}),
    "kube1": (
        "kubectl",
        "ansible_kubectl_pod=web-0 ansible_kubectl_container=app ansible_kubectl_context=prod "
        "ansible_kubectl_token=tok ansible_kubectl_verify_ssl=false ansible_kubectl_extra_args='--v=2 --request-timeout=5s'",
        {
            "method": "kubectl",
            "container": "web-0",
            "kube_container": "app",
            "namespace": "from-env",  # K8S_AUTH_NAMESPACE
            "context": "prod",
            "token": "********",
            "validate_certs": False,
            "extra_args": ["--v=2", "--request-timeout=5s"],
        },
    ),
}
# ns.mitogen.<ours> -> a counterpart name the strategy redirects
COUNTERPARTS = {
    "setns": "mitogen_setns",
    "machinectl": "community.general.machinectl",
    "lxc": "lxc",
    "lxd": "community.general.lxd",
    "incus": "community.general.incus",
    "jail": "community.general.jail",
    "kubectl": "kubernetes.core.kubectl",
}


def _inventory(tmp_path, counterparts: bool) -> str:
    lines = ["[all]"]
    for host, (plugin, variables, _want) in HOSTS.items():
        connection = COUNTERPARTS[plugin] if counterparts else "ns.mitogen.%s" % plugin
        lines.append("%s ansible_connection=%s %s" % (host, connection, variables))
    lines += ["[all:vars]", "ansible_python_interpreter=/usr/bin/python3"]
    path = tmp_path / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# the same plugins read the same variables either way: ours under the built-in strategy in the full matrix
@pytest.mark.parametrize(
    "counterparts", [pytest.param(False, marks=pytest.mark.slow), True], ids=["ours", "counterparts-redirected"]
)
def test_engine_plugins_read_their_counterparts_variables(tmp_path, counterparts):
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "out"
    out.mkdir()
    env = {"K8S_AUTH_NAMESPACE": "from-env"}
    if counterparts:
        env["ANSIBLE_STRATEGY"] = "ns.mitogen.linear"
    rc, _recap, output = run_playbook(
        tmp_path, _inventory(tmp_path, counterparts), str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out, env=env
    )
    assert rc == 0, output[-4000:]
    for host, (_plugin, _variables, want) in HOSTS.items():
        spec = json.loads((out / ("%s.json" % host)).read_text())[-1]
        assert {k: spec.get(k) for k in want} == want, (host, spec)
        assert spec["python"] == ["/usr/bin/python3"]
    assert "has no effect" not in output, output[-4000:]
