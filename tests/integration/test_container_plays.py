"""Container hosts in real plays: the counterparts' names switched to ours, and containers behind a host.

* Under an ns.mitogen strategy, hosts on ``containers.podman.podman``,
  ``community.docker.docker``, ``containers.podman.buildah``, their old bare names
  and the original product's ``mitogen_podman``/``mitogen_docker``/``mitogen_buildah``
  run on ``ns.mitogen.podman``/``docker``/``buildah``, with the counterparts'
  variables; ``mitogen_disable: true`` keeps the counterpart. Become (sudo to
  ``nobody`` inside the container) works on each.
* Containers on a remote testbed host, reached with ``mitogen_via: sudo:root@h2``:
  the stack is h2's login (ssh), sudo to root, then the container; every module
  source and module crosses the link to h2 once, whatever the number of containers
  behind it (counted by the multiplexer, as ``test_via_cache`` counts ssh targets).
"""

from __future__ import annotations

import json
import tempfile

import pytest

from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _mux_client
from ansible_collections.ns.mitogen.plugins.plugin_utils._names import redirect
from tests.integration.runner_support import full_args, make_request, module_path
from tests.integration.test_ansible_connection import run_playbook
from tests.testbed.containers import Podman
from tests.testbed.containers import unavailable_reason as containers_unavailable_reason

pytestmark = pytest.mark.testbed

PY = "/usr/bin/python3"
PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ns.mitogen.mitogen_get_stack:
      register: stack
    - ansible.builtin.command: cat /etc/hostname
      changed_when: false
      register: inside
    - ansible.builtin.command: id -un
      changed_when: false
      become: true
      become_user: nobody
      register: become_who
    - ansible.builtin.copy:
        content: "{{ {'stack': stack, 'hostname': inside.stdout, 'become': become_who.stdout} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def test_every_container_name_is_redirected_to_ours() -> None:
    for names, ours in (
        (("containers.podman.podman", "podman", "mitogen_podman"), "ns.mitogen.podman"),
        (("community.docker.docker", "community.general.docker", "docker", "mitogen_docker"), "ns.mitogen.docker"),
        (("containers.podman.buildah", "buildah", "mitogen_buildah"), "ns.mitogen.buildah"),
    ):
        assert [redirect(n) for n in names] == [ours] * len(names)


@pytest.fixture(scope="module")
def engine():
    reason = containers_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    podman = Podman(state_dir=tempfile.mkdtemp(prefix="nsm-plays-", dir="/var/tmp"))
    try:
        podman.docker_api()
        yield podman
    finally:
        podman.close()


def _run(tmp_path, hosts, env=None):
    inv = tmp_path / "hosts"
    inv.write_text("[all]\n%s\n[all:vars]\nansible_python_interpreter=%s\n" % ("\n".join(hosts), PY))
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "out"
    out.mkdir()
    environ = {"ANSIBLE_STRATEGY": "ns.mitogen.linear", **(env or {})}
    rc, stats, output = run_playbook(tmp_path, str(inv), str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out, env=environ)
    assert rc == 0, output[-4000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}, output


def test_the_counterparts_run_on_ours_and_mitogen_disable_keeps_theirs(engine: Podman, tmp_path) -> None:
    c = engine.run("plays-c")
    b = engine.buildah_from("plays-b")
    podman = "ansible_host=%s ansible_podman_executable=%s" % (c, engine.executable)
    docker = "ansible_host=%s ansible_docker_extra_args='--host %s'" % (c, engine.docker_host)
    hosts = [
        "p-fqcn ansible_connection=containers.podman.podman %s" % podman,
        "p-bare ansible_connection=podman %s" % podman,
        "p-orig ansible_connection=mitogen_podman %s" % podman,
        "p-off ansible_connection=containers.podman.podman mitogen_disable=true %s" % podman,
        "d-fqcn ansible_connection=community.docker.docker %s" % docker,
        "d-orig ansible_connection=mitogen_docker %s" % docker,
        "d-off ansible_connection=community.docker.docker mitogen_disable=true %s" % docker,
        "b-fqcn ansible_connection=containers.podman.buildah ansible_host=%s" % b,
        "b-orig ansible_connection=mitogen_buildah ansible_host=%s" % b,
    ]
    # containers.podman.buildah runs buildah from PATH: its configuration from the environment
    results, output = _run(tmp_path, hosts, env=engine.env)
    assert set(results) == {h.split()[0] for h in hosts}
    hostname = engine.exec(c, "cat", "/etc/hostname").strip()
    for host, result in results.items():
        stack = result["stack"]
        if host.endswith("-off"):
            assert stack.get("skipped") and "not an ns.mitogen one" in stack["msg"], (host, stack)
        else:
            method = {"p": "podman", "d": "docker", "b": "buildah"}[host[0]]
            spec = stack["result"][0]
            assert (spec["method"], len(stack["result"])) == (method, 1), (host, stack)
            assert spec["container"] == (b if method == "buildah" else c)
        if host[0] in "pd":
            assert result["hostname"] == hostname, (host, result)  # ran inside the container
        assert result["become"] == "nobody", (host, result)  # sudo inside the container
    specs = {h: r["stack"]["result"][0] for h, r in results.items() if not h.endswith("-off")}
    assert specs["p-fqcn"]["engine_path"] == engine.executable
    assert specs["d-fqcn"]["engine_args"] == ["--host", engine.docker_host] and specs["d-fqcn"]["engine_path"] == "docker"


def test_containers_behind_a_host_through_mitogen_via(engine: Podman, testbed, tmp_path) -> None:
    names = [engine.run("plays-via-%d" % i) for i in range(3)]
    h2 = "h2 ansible_connection=ns.mitogen.ssh ansible_host=%s ansible_user=%s ansible_ssh_private_key_file=%s" % (
        testbed["h2"].address,
        testbed.users.sudo.name,
        testbed.key,
    )
    h2 += " ansible_ssh_common_args='-o UserKnownHostsFile=%s'" % testbed.known_hosts
    via = "ansible_connection=ns.mitogen.podman mitogen_via=sudo:root@h2 ansible_podman_executable=%s" % engine.host_executable()
    hosts = [h2] + ["c%d ansible_host=%s %s" % (i, name, via) for i, name in enumerate(names)]
    results, output = _run(tmp_path, hosts)
    for i, name in enumerate(names):
        stack = results["c%d" % i]["stack"]["result"]
        assert [s["method"] for s in stack] == ["ssh", "sudo", "podman"], stack
        assert stack[0]["hostname"] == testbed["h2"].address and stack[1]["username"] == "root"
        assert stack[2]["container"] == name
        assert results["c%d" % i]["hostname"] == engine.exec(name, "cat", "/etc/hostname").strip()
        assert results["c%d" % i]["become"] == "nobody"


@pytest.fixture
def client(playbook):
    client = _mux_client.connect_client(playbook.pid, [])
    try:
        yield client
    finally:
        client.close()


def test_modules_cross_to_the_host_once_for_every_container_behind_it(engine: Podman, testbed, client) -> None:
    """Through the mux, as ns.mitogen.podman with mitogen_via uses it: each source and module once."""
    names = [engine.run("cache-%d" % i) for i in range(4)]
    login = {
        "method": "ssh",
        "hostname": testbed["h2"].address,
        "username": testbed.users.sudo.name,
        "identity_file": str(testbed.key),
        "known_hosts_file": str(testbed.known_hosts),
        "python": PY,
    }
    root = {"method": "sudo", "username": "root", "python": PY}
    podman = {"method": "podman", "engine_path": engine.host_executable(), "python": PY}
    stacks = [[login, root, dict(podman, container=name)] for name in names]
    path = module_path("ping")
    request = make_request(path, full_args({"data": "x"}, "ping", "/tmp"), name="ansible.modules.ping", send_source=False)
    request.pop("source_path", None)
    for stack in stacks:
        reply = client.call(stack, _mux.RUN_MODULE, (request,), source_id=request["source_id"], source_path=path, login_hops=3)
        assert reply.get("rc") == 0 and b'"ping": "x"' in reply["stdout"], reply
    login_id = client.request("connect", stack=[login])["context_id"]
    root_id = client.request("connect", stack=[login, root], login_hops=1)["context_id"]
    stats = client.request("stats")
    # the module's source went once to root's interpreter on h2, the containers' parent;
    # the code they import crossed the controller's link (to h2's login) once
    assert stats["sources_given"] == {root_id: {request["source_id"]: 1}}, stats
    assert stats["sources_served"] == {}, stats
    assert set(stats["modules_sent"]) == {login_id}, stats["modules_sent"]
    assert all(n == 1 for n in stats["modules_sent"][login_id].values()), stats["modules_sent"]


DOCKER_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ns.mitogen.mitogen_get_stack:
      register: stack
    - ansible.builtin.shell: echo "$NSM_FOO $(pwd)"
      changed_when: false
      register: inside
    - ansible.builtin.copy:
        content: "{{ {'stack': stack, 'inside': inside.stdout} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def test_docker_options_and_mitogen_path_are_honoured_without_a_warning(engine: Podman, tmp_path) -> None:
    """extra_env, working_dir, privileged, container_timeout reach docker exec; mitogen_docker_path wins."""
    c = engine.run("plays-opts")
    host = (
        "d1 ansible_connection=ns.mitogen.docker ansible_host=%s ansible_docker_extra_args='--host %s' "
        'ansible_docker_extra_env=\'{"NSM_FOO": "bar"}\' ansible_docker_working_dir=/srv '
        "ansible_docker_privileged=true ansible_docker_timeout=45 mitogen_docker_path=%s "
        "p1 ansible_connection=ns.mitogen.podman ansible_host=%s mitogen_podman_path=%s ansible_podman_executable=/nonexistent"
        % (c, engine.docker_host, engine.docker_executable, c, engine.executable)
    )
    inv = tmp_path / "hosts"
    inv.write_text("[all]\n%s\n[all:vars]\nansible_python_interpreter=%s\n" % (host.replace(" p1 ", "\np1 "), PY))
    (tmp_path / "play.yml").write_text(DOCKER_PLAY)
    out = tmp_path / "out"
    out.mkdir()
    rc, stats, output = run_playbook(tmp_path, str(inv), str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out)
    assert rc == 0, output[-4000:]
    d1 = json.loads((out / "d1.json").read_text())
    spec = d1["stack"]["result"][0]
    assert spec["exec_args"] == ["-e", "NSM_FOO=bar", "-w", "/srv", "--privileged"], spec
    assert spec["engine_path"] == engine.docker_executable and spec["connect_timeout"] == 45
    assert d1["inside"].startswith("bar "), d1  # the environment reached the interpreter's commands
    p1 = json.loads((out / "p1.json").read_text())
    assert p1["stack"]["result"][0]["engine_path"] == engine.executable
    assert "mitogen_docker_path" not in output and "mitogen_podman_path" not in output  # honoured: no warning


RAW_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.raw: echo "raw in $(cat /etc/hostname)"
      register: raw
    - ansible.builtin.copy:
        content: "{{ raw.stdout }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
        mode: "0600"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def test_raw_runs_in_a_container_without_python(engine: Podman, tmp_path) -> None:
    """As when a play installs Python: raw goes through the engine's client once, no interpreter."""
    c = engine.run("plays-nopy", python=False)
    hosts = [
        "p1 ansible_connection=ns.mitogen.podman ansible_host=%s ansible_podman_executable=%s" % (c, engine.executable),
        "d1 ansible_connection=ns.mitogen.docker ansible_host=%s ansible_docker_extra_args='--host %s'" % (c, engine.docker_host),
    ]
    inv = tmp_path / "hosts"
    # a named interpreter, as a play that installs Python names it (discovery fails the task, as on ssh)
    inv.write_text("[all]\n%s\n[all:vars]\nansible_python_interpreter=%s\n" % ("\n".join(hosts), PY))
    (tmp_path / "play.yml").write_text(RAW_PLAY)
    out = tmp_path / "out"
    out.mkdir()
    rc, stats, output = run_playbook(tmp_path, str(inv), str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out)
    assert rc == 0, output[-4000:]
    hostname = engine.exec(c, "cat", "/etc/hostname").strip()
    for host in ("p1", "d1"):
        assert (out / ("%s.txt" % host)).read_text().strip() == "raw in %s" % hostname
