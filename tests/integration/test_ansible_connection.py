"""ansible-playbook with ansible_connection=ns.mitogen.ssh on real testbed hosts.

Under the built-in linear strategy (the connection plugin alone must give correct
results); the ns.mitogen strategies come later.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.testbed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(ROOT, "tests", "integration", "playbooks")
BIN = os.path.dirname(sys.executable)


def inventory(tb, path, hosts=("h1", "h2"), **extra) -> str:
    lines = ["[all]"]
    for name in hosts:
        lines.append("%s ansible_host=%s" % (name, tb[name].address))
    lines.append("[all:vars]")
    defaults = {
        "ansible_connection": "ns.mitogen.ssh",
        "ansible_user": tb.users.sudo.name,
        "ansible_ssh_private_key_file": str(tb.key),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % tb.known_hosts,
    }
    defaults.update(extra)
    lines += ["%s=%s" % (k, v) for k, v in defaults.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def playbook_environ(tmp_path, env=None):
    """The environment of a test's ansible-playbook: this checkout's collection, a private home."""
    environ = dict(os.environ)
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    environ.update(env or {})
    return environ


def run_playbook(tmp_path, inv, playbook, *args, env=None, wrap=(), timeout=300):
    """``wrap``: a command prefix (``prlimit ... --``)."""
    environ = playbook_environ(tmp_path, env)
    cmd = [*wrap, os.path.join(BIN, "ansible-playbook"), "-i", inv, os.path.join(PLAYBOOKS, playbook), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=timeout, check=False)
    recap = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out.stdout, re.M):
        recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    if not recap:
        raise AssertionError("no PLAY RECAP (rc=%d):\n%s\n%s" % (out.returncode, out.stdout[-3000:], out.stderr[-3000:]))
    return out.returncode, recap, out.stdout + out.stderr


def test_connection_basics_under_builtin_linear(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts")
    rc, stats, output = run_playbook(tmp_path, inv, "connection_basics.yml", "-e", "fetch_dir=%s" % (tmp_path / "fetched"))
    assert rc == 0, output[-4000:]
    for host in ("h1", "h2"):
        assert stats[host]["failed"] == 0 and stats[host]["unreachable"] == 0
        fetched = tmp_path / "fetched" / host / "tmp" / "nsm-conn" / "hello.txt"
        assert fetched.read_text() == "hello %s\n" % host


def test_unreachable_host_is_reported_and_others_go_on(testbed, tmp_path):
    inv = tmp_path / "hosts"
    inventory(testbed, inv)
    inv.write_text(inv.read_text().replace("[all:vars]", "bad ansible_host=%s\n[all:vars]" % testbed.unused_address()))
    rc, stats, output = run_playbook(tmp_path, str(inv), "connection_basics.yml", "-e", "fetch_dir=%s" % (tmp_path / "f"))
    assert stats["bad"]["unreachable"] == 1, output[-3000:]
    assert stats["h1"]["failed"] == 0 and stats["h1"]["ok"] > 5
    assert rc == 4


@pytest.mark.parametrize(
    "strategy", ["ns.mitogen.linear", "ns.mitogen.free", "ns.mitogen.host_pinned", "ns.mitogen.mitogen_linear"]
)
def test_strategies_redirect_builtin_ssh_and_reuse_interpreters(testbed, tmp_path, strategy):
    inv = inventory(testbed, tmp_path / "hosts", ansible_connection="ssh")
    rc, stats, output = run_playbook(
        tmp_path, inv, "strategy_redirect.yml", "-e", "expect_reuse=true", env={"ANSIBLE_STRATEGY": strategy}
    )
    assert rc == 0, output[-4000:]
    assert stats["h1"]["failed"] == 0 and stats["h2"]["ok"] >= 5


def test_per_host_opt_out_keeps_builtin_ssh(testbed, tmp_path):
    inv = inventory(
        testbed, tmp_path / "hosts", ansible_connection="ssh", mitogen_disable="true", ansible_ssh_args="-o ControlMaster=no"
    )
    rc, stats, output = run_playbook(
        tmp_path, inv, "strategy_redirect.yml", "-e", "expect_reuse=false", env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"}
    )
    assert rc == 0, output[-4000:]


def test_original_product_config_works_by_changing_only_the_path(testbed, tmp_path):
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\nstrategy_plugins = %s\nstrategy = mitogen_linear\n" % os.path.join(ROOT, "strategy_plugins"))
    inv = inventory(testbed, tmp_path / "hosts", ansible_connection="ssh")
    rc, stats, output = run_playbook(
        tmp_path, inv, "strategy_redirect.yml", "-e", "expect_reuse=true", env={"ANSIBLE_CONFIG": str(cfg)}
    )
    assert rc == 0, output[-4000:]


def test_dead_interpreter_is_recreated_on_the_next_task(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    rc, stats, output = run_playbook(tmp_path, inv, "dead_interpreter.yml", env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"})
    assert rc == 0, output[-4000:]
    assert stats["h1"]["failed"] == 0  # the playbook asserts the rest


def test_vvv_shows_each_rpc_and_the_targets_log_and_debug_dir_has_per_process_logs(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    logs = tmp_path / "logs"
    rc, stats, output = run_playbook(
        tmp_path,
        inv,
        "connection_basics.yml",
        "-vvv",
        "-e",
        "fetch_dir=%s" % (tmp_path / "f"),
        env={"ANSIBLE_STRATEGY": "ns.mitogen.linear", "NS_MITOGEN_LOG_DIR": str(logs)},
    )
    assert rc == 0, output[-4000:]
    assert re.search(r"ns\.mitogen RUN ansible\.modules\.command in process", output)
    assert re.search(r"ns\.mitogen target: DEBUG ns\.mitogen\.runner: .*rc 0 in [\d.]+ ms", output)
    assert "ns.mitogen PUT " in output and "ns.mitogen FETCH " in output
    for section in re.split(r"\nTASK \[", output)[1:]:  # each interpreter named once a task, not once a call
        named = re.findall(r"ns\.mitogen: interpreter for .*", section)
        assert len(named) == len(set(named)), section[:2000]
    assert "ns.mitogen: interpreter for" in output
    muxes = list(logs.glob("mux-*.log"))
    workers = list(logs.glob("worker-*.log"))
    assert len(muxes) == 1 and len(workers) > 3
    mux_log = muxes[0].read_text()
    assert "ns.mitogen.runner" in mux_log  # a target's own record, forwarded to the mux
    assert any(re.search(r"call .*run_module.* -> ok \([\d.]+ ms\)", w.read_text()) for w in workers)


def test_json_stdout_callback_stays_parseable(testbed, tmp_path):
    import json

    inv = inventory(testbed, tmp_path / "hosts")
    environ = dict(os.environ)
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "integration", "callback_plugins"),
        ANSIBLE_STDOUT_CALLBACK="nsm_json",
        ANSIBLE_STRATEGY="ns.mitogen.linear",
    )
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inv, os.path.join(PLAYBOOKS, "connection_basics.yml")]
    out = subprocess.run(
        cmd + ["-e", "fetch_dir=%s" % (tmp_path / "f")], capture_output=True, text=True, env=environ, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert set(doc["stats"]) == {"h1", "h2"} and all(s["failures"] == 0 for s in doc["stats"].values())


def test_raw_without_python_over_a_password_login(testbed, tmp_path):
    """The one-shot path answers ssh's password prompt too (bootstrapping Python on such a host).

    A become password cannot be typed there: a clear failure that says what to do.
    """
    inv = inventory(
        testbed,
        tmp_path / "hosts",
        hosts=("h1",),
        ansible_user=testbed.users.pw.name,
        ansible_password=testbed.users.pw.password,
        ansible_python_interpreter="/nonexistent/bin/python3",
        ansible_ssh_private_key_file="/nonexistent/key",
    )
    play = tmp_path / "raw.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.raw: echo hi; id -un\n      register: r\n"
        "    - ansible.builtin.assert:\n        that: r.stdout_lines[-1] == %r\n"
        "    - ansible.builtin.raw: id -u\n      become: true\n      vars:\n        ansible_become_pass: x\n"
        % testbed.users.pw.name
    )
    rc, stats, output = run_playbook(tmp_path, inv, str(play), env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"})
    assert stats["h1"]["ok"] == 2 and stats["h1"]["unreachable"] == 1, output[-3000:]
    assert "cannot answer a become password prompt" in output and "bootstrap Python" in output


@pytest.mark.parametrize("mechanism", ["ssh_askpass", "sshpass", "disable"])
def test_password_logins_under_each_password_mechanism(testbed, tmp_path, mechanism):
    """ansible.builtin.ssh's ``password_mechanism`` values mean the same here.

    Both mechanisms log in (ns.mitogen types the password itself: no sshpass program
    is involved); ``disable`` sends no password, and the login fails as vanilla's does.
    """
    user = testbed.users.pw
    inv = inventory(
        testbed,
        tmp_path / "hosts",
        hosts=("h1",),
        ansible_user=user.name,
        ansible_password=user.password,
        ansible_ssh_private_key_file="/nonexistent/key",
        ansible_ssh_password_mechanism=mechanism,
    )
    play = tmp_path / "whoami.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: whoami\n      register: who\n"
        "    - ansible.builtin.assert:\n        that: who.stdout == %r\n" % user.name
    )
    rc, stats, output = run_playbook(tmp_path, inv, str(play))
    if mechanism == "disable":
        assert stats["h1"]["unreachable"] == 1 and "Permission denied" in output, output[-3000:]
    else:
        assert rc == 0 and stats["h1"]["ok"] == 2 and stats["h1"]["failed"] == 0, output[-3000:]
