"""``mitogen_via``: hosts reached through other inventory hosts, on real testbed hosts.

The session testbed's h3 is reachable only from h2. Each test runs a small play with
h3 behind h2 (``mitogen_via``), as a templated value, as ``sudo:root@h2``, as the
target of ``delegate_to``, under ``ns.mitogen.linear`` and under the built-in linear
strategy with ``ansible_connection=ns.mitogen.ssh``; and the errors: a cycle, an
unknown host, a malformed value, each failing its own host only, naming the chain.
A host behind an intermediary reads its own ssh files on the intermediary (its ssh
runs there): h3's inventory leaves them at the testbed account's defaults there.
The 3-hop chain under the differential suite is test_via_differential.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.integration.test_ansible_connection import BIN, ROOT, playbook_environ, run_playbook

pytestmark = pytest.mark.testbed

STRATEGIES = {
    "ns.mitogen.linear": "ssh",
    "ns.mitogen.free": "ssh",
    "ns.mitogen.host_pinned": "ssh",
    "ansible.builtin.linear": "ns.mitogen.ssh",
}

# Which host answers: its addresses (h3's only network is its link to h2).
PLAY = """
- hosts: "{{ play_hosts_pattern | default('all') }}"
  gather_facts: false
  tasks:
    - ns.mitogen.mitogen_get_stack:
      register: stack
    - ansible.builtin.command: ip -4 -o addr show
      register: addrs
      changed_when: false
    - ansible.builtin.shell: echo $PPID
      register: before
      changed_when: false
    - ansible.builtin.meta: reset_connection
    - ansible.builtin.shell: echo $PPID
      register: after
      changed_when: false
    - ansible.builtin.copy:
        content: "{{ {'stack': stack.result, 'addrs': addrs.stdout, 'pids': [before.stdout, after.stdout]} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def write_inventory(tb, path, extra="", h3_vars="mitogen_via=h2", connection="ns.mitogen.ssh"):
    """h1, h2 reached directly (the testbed's key and known_hosts), h3 with ``h3_vars``."""
    direct = "ansible_ssh_private_key_file=%s ansible_ssh_common_args='-o UserKnownHostsFile=%s'" % (tb.key, tb.known_hosts)
    lines = [
        "[all]",
        "h1 ansible_host=%s %s" % (tb["h1"].address, direct),
        "h2 ansible_host=%s %s" % (tb["h2"].address, direct),
        "h3 ansible_host=%s %s" % (tb["h3"].address, h3_vars),
        extra,
        "[all:vars]",
        "ansible_connection=%s" % connection,
        "ansible_user=%s" % tb.users.sudo.name,
        "ansible_python_interpreter=/usr/bin/python3",
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def play(tmp_path, inv, *args, strategy="ns.mitogen.linear", text=PLAY):
    (tmp_path / "play.yml").write_text(text)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {"ANSIBLE_STRATEGY": strategy, "ANSIBLE_PLAYBOOK_DIR": ROOT}
    rc, stats, output = run_playbook(tmp_path, inv, str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out, *args, env=env)
    return rc, stats, output, out


def result(out, host):
    return json.loads((out / ("%s.json" % host)).read_text())


def hop_hosts(stack):
    return [(spec["method"], spec.get("hostname") or spec.get("username")) for spec in stack]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_templated_via_reaches_the_private_host_through_its_bastion(testbed, tmp_path, strategy):
    inv = write_inventory(
        testbed,
        tmp_path / "hosts",
        h3_vars="mitogen_via='{{ bastion_name }}'",
        extra="[all:vars]\nbastion_name=h{{ 1 + 1 }}",
        connection=STRATEGIES[strategy],
    )
    rc, stats, output, out = play(tmp_path, inv, "-vvv", strategy=strategy)
    assert rc == 0, output[-4000:]
    h3 = result(out, "h3")
    assert hop_hosts(h3["stack"]) == [("ssh", testbed["h2"].address), ("ssh", testbed["h3"].address)]
    assert testbed["h3"].address in h3["addrs"] and testbed["h2"].address not in h3["addrs"]
    assert hop_hosts(result(out, "h2")["stack"]) == [("ssh", testbed["h2"].address)]
    assert "ns.mitogen: mitogen_via chain h2 -> h3" in output
    assert stats["h3"]["failed"] == 0 and stats["h1"]["failed"] == 0
    before, after = h3["pids"]
    assert before != after  # meta: reset_connection gave h3 a new interpreter


def test_sudo_root_at_bastion_runs_the_next_hop_as_root_there(testbed, tmp_path):
    home = "/home/%s/.ssh" % testbed.users.sudo.name  # root has no key on h2: it reads the account's
    h3_vars = (
        "mitogen_via=sudo:root@h2 ansible_ssh_private_key_file=%s/id_ed25519 "
        "ansible_ssh_common_args='-o UserKnownHostsFile=%s/known_hosts'" % (home, home)
    )
    inv = write_inventory(testbed, tmp_path / "hosts", h3_vars=h3_vars)
    rc, stats, output, out = play(tmp_path, inv, "--limit", "h3")
    assert rc == 0, output[-4000:]
    stack = result(out, "h3")["stack"]
    assert hop_hosts(stack) == [("ssh", testbed["h2"].address), ("sudo", "root"), ("ssh", testbed["h3"].address)]
    assert testbed["h3"].address in result(out, "h3")["addrs"]


def test_delegate_to_a_host_behind_a_bastion_uses_its_own_via(testbed, tmp_path):
    """Hosts on ``ssh`` under ns.mitogen.linear: the delegated host's connection is chosen
    in the worker (ansible-core computes its variables there), ours unless it opts out."""
    text = """
- hosts: h1
  gather_facts: false
  tasks:
    - ansible.builtin.command: ip -4 -o addr show
      delegate_to: h3
      register: addrs
      changed_when: false
    - ansible.builtin.assert:
        that: ["'{{ hostvars.h3.ansible_host }}' in addrs.stdout"]
    - ansible.builtin.command: "true"
      delegate_to: h2
      changed_when: false
"""
    inv = write_inventory(testbed, tmp_path / "hosts", connection="ssh")
    inv_text = (
        open(inv)
        .read()
        .replace("h2 ansible_host=%s" % testbed["h2"].address, "h2 mitogen_disable=true ansible_host=%s" % testbed["h2"].address)
    )
    open(inv, "w").write(inv_text)
    rc, stats, output, _out = play(tmp_path, inv, "-vvv", text=text)
    assert rc == 0, output[-4000:]
    assert stats["h1"]["ok"] == 3
    assert "ns.mitogen: mitogen_via chain h2 -> h3" in output
    # h2 opts out: the built-in ssh runs there (as the intermediary of h3, h2 is ours regardless)
    assert "<%s> ESTABLISH SSH CONNECTION" % testbed["h2"].address in output
    assert "mitogen_disable has no effect on h2 as an intermediary of mitogen_via (h3 -> h2)" in " ".join(output.split())


BAD = {
    "cycle_a": ("mitogen_via=cycle_b", "mitogen_via cycle: cycle_a -> cycle_b -> cycle_a"),
    "cycle_b": ("mitogen_via=cycle_a", "mitogen_via cycle: cycle_b -> cycle_a -> cycle_b"),
    "itself": ("mitogen_via=itself", "mitogen_via cycle: itself -> itself"),
    "unknown": ("mitogen_via=nosuch", "mitogen_via unknown -> nosuch: no host 'nosuch' in the inventory"),
    "deep": ("mitogen_via=cycle_a", "mitogen_via cycle: deep -> cycle_a -> cycle_b -> cycle_a"),
    "malformed": ("mitogen_via=a@b@c", "mitogen_via of malformed is 'a@b@c': expected host, user@host or become_method"),
}


@pytest.mark.parametrize("case", ["cycle", "unknown host", "malformed"])
def test_a_bad_via_fails_its_host_naming_the_chain_and_others_go_on(testbed, tmp_path, case):
    names = {"cycle": ["cycle_a", "cycle_b", "itself", "deep"], "unknown host": ["unknown"], "malformed": ["malformed"]}[case]
    extra = "\n".join("%s ansible_host=%s %s" % (name, testbed["h1"].address, BAD[name][0]) for name in names)
    inv = write_inventory(testbed, tmp_path / "hosts", extra=extra)
    rc, stats, output, _out = play(tmp_path, inv, "--limit", ",".join(["h1", *names]))
    flat = " ".join(output.split())
    assert rc != 0
    for name in names:
        assert stats[name]["failed"] == 1 and stats[name]["ok"] == 0, output[-4000:]
        assert BAD[name][1] in flat, (name, output[-4000:])
    assert stats["h1"]["failed"] == 0 and stats["h1"]["ok"] == 5


def test_one_bastion_interpreter_serves_the_bastion_and_the_hosts_behind_it(testbed, tmp_path):
    text = """
- hosts: h2,h3
  gather_facts: false
  tasks:
    - ansible.builtin.command: "true"
      changed_when: false
    - ansible.builtin.shell: ps -eo args | grep -c '^[s]sh .*{{ hostvars.h2.ansible_host }}\\b' || true
      register: logins
      changed_when: false
      delegate_to: localhost
      run_once: true
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
    - ansible.builtin.assert:
        that: ["logins.stdout | int == 1"]
      run_once: true
"""
    inv = write_inventory(testbed, tmp_path / "hosts")
    rc, stats, output, _out = play(tmp_path, inv, text=text)
    assert rc == 0, output[-4000:]


FAULT_PLAY = """
- hosts: h1,h3
  gather_facts: false
  tasks:
    - ansible.builtin.command: "true"
    - ansible.builtin.command: sleep 120
      when: inventory_hostname == 'h3'
      ignore_unreachable: true
      ignore_errors: true
    - ansible.builtin.command: "true"
"""


def _pids_in(host, wanted):
    """Pids of the processes in ``host``'s network namespace whose argv (bytes) ``wanted`` accepts."""
    pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, check=True).stdout.split()
    found = []
    for pid in pids:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fp:
                argv = fp.read().split(b"\0")
        except OSError:
            continue
        if wanted(argv):
            found.append(int(pid))
    return found


def _parent(pid):
    with open("/proc/%d/status" % pid) as fp:
        return int(next(line for line in fp if line.startswith("PPid:")).split()[1])


def test_a_killed_bastion_fails_the_hosts_behind_it_fast_and_the_next_task_rebuilds_the_chain(testbed, tmp_path):
    inv = write_inventory(testbed, tmp_path / "hosts")
    (tmp_path / "play.yml").write_text(FAULT_PLAY)
    env = playbook_environ(tmp_path, {"ANSIBLE_STRATEGY": "ns.mitogen.linear"})
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inv, str(tmp_path / "play.yml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _pids_in(testbed["h3"], lambda argv: argv[:2] == [b"sleep", b"120"]):
            assert time.monotonic() < deadline and proc.poll() is None, "the long task never started"
            time.sleep(0.2)
        pythons = _pids_in(testbed["h2"], lambda argv: argv[0].endswith(b"python3") and argv[1:2] == [b"-c"])
        bastion = [pid for pid in pythons if _parent(pid) not in pythons]  # not its zygote, a fork of it
        assert len(bastion) == 1, pythons
        killed = time.monotonic()
        os.kill(bastion[0], signal.SIGKILL)
        output = proc.communicate(timeout=60)[0]
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in _pids_in(testbed["h3"], lambda argv: argv[:2] == [b"sleep", b"120"]):  # h3's orphan, if any
            os.kill(pid, signal.SIGKILL)
    assert took < 10, output[-3000:]
    flat = " ".join(output.split())
    assert "ssh:%s@%s disconnected" % (testbed.users.sudo.name, testbed["h2"].address) in flat, output[-3000:]
    assert "killed by SIGKILL" in flat
    recap = {host: dict(re.findall(r"(\w+)=(\d+)", counts)) for host, counts in re.findall(r"^(h\d)\s+:(.*)$", output, re.M)}
    assert recap["h3"]["ok"] == "3" and recap["h3"]["ignored"] == "1", output[-3000:]  # the third task: a new chain
    assert recap["h1"]["ok"] == "2" and recap["h1"]["failed"] == "0", output[-3000:]


def test_an_unreachable_bastion_fails_the_host_behind_it_naming_the_hop_and_the_chain(testbed, tmp_path):
    gone = testbed.unused_address()
    extra = "gone ansible_host=%s ansible_ssh_private_key_file=%s" % (gone, testbed.key)
    inv = write_inventory(testbed, tmp_path / "hosts", extra=extra, h3_vars="mitogen_via=gone")
    rc, stats, output, _out = play(tmp_path, inv, "--limit", "h1,h3")
    flat = " ".join(output.split())
    assert stats["h3"]["unreachable"] == 1 and stats["h1"]["ok"] == 5, output[-3000:]
    assert "connect to host %s port 22" % gone in flat, output[-3000:]
    assert "reached through mitogen_via gone -> h3" in flat, output[-3000:]
