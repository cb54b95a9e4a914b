"""Plain ``fetch`` runs ns.mitogen.fetch on ns.mitogen connections, under any strategy.

Told apart by round trips (``NS_MITOGEN_ROUND_TRIPS``): ns.mitogen.fetch stats and
streams the file in one call, ansible's own action takes two (the stat module, then
the transfer). ``fetch``, ``ansible.builtin.fetch`` and ``ansible.legacy.fetch`` take
one on a host our strategy sends to ``ns.mitogen.ssh`` (on the oldest and newest
ansible-core too), and under the built-in ``linear`` on a host whose connection is
``ns.mitogen.ssh``. A host with ``mitogen_disable: true`` keeps ansible's own action
(and, under our strategy, ansible's own ssh connection).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.integration import test_ansible_connection
from tests.integration.test_ansible_connection import inventory, playbook_environ
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FETCHES = ["fetch", "ansible.builtin.fetch", "ansible.legacy.fetch", "fetch", "fetch", "ns.mitogen.fetch"]


def run(tb, tmp_path, core, strategy, connection, **host_vars):
    """The round-trip lines of ``fetch_routing.yml``'s tasks, by host address."""
    bin_dir = test_ansible_connection.BIN
    if core is not None:
        bin_dir = os.path.join(REPO, ".venvs", "core-%s" % core, "bin")
        if not os.path.exists(os.path.join(bin_dir, "ansible-playbook")):
            unavailable("no .venvs/core-%s (scripts/setup makes it)" % core)
    inv = inventory(tb, tmp_path / "hosts", ansible_connection=connection)
    for host, line in host_vars.items():
        text = (tmp_path / "hosts").read_text().replace("%s ansible_host" % host, "%s %s ansible_host" % (host, line))
        (tmp_path / "hosts").write_text(text)
    trips = tmp_path / "trips.jsonl"
    env = playbook_environ(tmp_path, {"NS_MITOGEN_ROUND_TRIPS": str(trips), "ANSIBLE_STRATEGY": strategy})
    fetched = tmp_path / "fetched"
    cmd = [
        os.path.join(bin_dir, "ansible-playbook"),
        "-i",
        inv,
        os.path.join(REPO, "tests/integration/playbooks/fetch_routing.yml"),
    ]
    out = subprocess.run(
        [*cmd, "-e", "nsm_fetched=%s" % fetched], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    for host in ("h1", "h2"):
        assert (fetched / "become" / host / "tmp/nsm-fetch-routing/f").read_text() == "fetched from %s\n" % host
    by_host: dict = {}
    for line in trips.read_text().splitlines() if trips.exists() else ():
        entry = json.loads(line)
        by_host.setdefault(entry["host"], []).append((entry["action"], entry["total"]))
    return by_host


@pytest.mark.parametrize("core", [None, "2.16", "2.21"], ids=["main", "2.16", "2.21"])
def test_plain_fetch_runs_ours_under_our_strategy(testbed, tmp_path, core):
    counts = run(testbed, tmp_path, core, "ns.mitogen.linear", "ssh", h2="mitogen_disable=true")
    assert set(counts) == {testbed["h1"].address}  # h2 kept ansible's ssh: no ns.mitogen round trip
    assert counts[testbed["h1"].address][1 : 1 + len(FETCHES)] == [(name, 1) for name in FETCHES]


def test_builtin_linear_runs_ours_unless_the_host_opts_out(testbed, tmp_path):
    counts = run(testbed, tmp_path, None, "ansible.builtin.linear", "ns.mitogen.ssh", h2="mitogen_disable=true")
    assert counts[testbed["h1"].address][1 : 1 + len(FETCHES)] == [(name, 1) for name in FETCHES]
    # h2: our connection (set by name), ansible's own action: its stat, then the transfer (none when unchanged)
    assert [total for _name, total in counts[testbed["h2"].address][1 : 1 + len(FETCHES)]] == [2, 2, 2, 1, 2, 1]
