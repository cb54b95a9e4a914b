"""Ansible's workers are forked with the garbage collector off what they inherit, and
the ns.mitogen.preload callback has them inherit our plugin under any strategy.

A worker lives for one task and shares the main process's objects copy-on-write; a
full collection in it writes to every one of them. Under a built-in strategy our
connection plugin freezes the worker's objects as it loads (``plugin_utils.
spare_inherited_objects``); our strategies freeze around each fork instead, and the
main process collects everything again at once. Observed from inside real workers
by a test action (``playbooks/action_plugins/nsm_gc_state.py``).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook


def _states(testbed, tmp_path, connection, strategy, **env):
    report = tmp_path / "gc.jsonl"
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",), ansible_connection=connection)
    env["ANSIBLE_STRATEGY"] = strategy
    rc, recap, log = run_playbook(tmp_path, inv, "worker_gc.yml", "-e", "nsm_gc_report=%s" % report, env=env)
    assert rc == 0, log[-3000:]
    states = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(states) == 2 and states[0]["pid"] != states[1]["pid"], states  # two workers
    return states


@pytest.mark.parametrize("strategy", ["ansible.builtin.linear", "ansible.builtin.free", "ns.mitogen.linear"])
def test_a_worker_on_our_connection_collects_only_its_own_objects(testbed, tmp_path, strategy):
    states = _states(testbed, tmp_path, "ns.mitogen.ssh", strategy)
    assert all(s["ours_loaded"] for s in states), states
    assert all(s["frozen"] > 10000 for s in states), states  # the whole inherited heap
    # our strategy loaded the plugin in the main process; a built-in one leaves it to each worker
    assert [s["ours_inherited"] for s in states] == [strategy.startswith("ns.")] * 2, states


@pytest.mark.parametrize("strategy", ["ansible.builtin.linear", "ansible.builtin.host_pinned"])
def test_the_preload_callback_has_workers_inherit_our_plugin(testbed, tmp_path, strategy):
    """ns.mitogen.preload loads our plugin in the main process under a built-in strategy:
    each worker inherits it (and still freezes what it inherited, as it makes our connection)."""
    states = _states(testbed, tmp_path, "ns.mitogen.ssh", strategy, ANSIBLE_CALLBACKS_ENABLED="ns.mitogen.preload")
    assert all(s["ours_inherited"] and s["frozen"] > 10000 for s in states), states


def test_a_worker_on_another_connection_is_left_alone(testbed, tmp_path):
    """The control: a built-in strategy and connection load nothing of ours, freeze nothing."""
    states = _states(testbed, tmp_path, "ansible.builtin.ssh", "ansible.builtin.linear")
    assert [s["frozen"] for s in states] == [0, 0] and not any(s["ours_loaded"] for s in states), states


def test_the_preload_callback_leaves_other_connections_alone(testbed, tmp_path):
    """Enabled for a play on another connection: the main process loads ours, workers
    inherit it, but nothing of ours runs in them (no connection of ours is made)."""
    states = _states(
        testbed, tmp_path, "ansible.builtin.ssh", "ansible.builtin.linear", ANSIBLE_CALLBACKS_ENABLED="ns.mitogen.preload"
    )
    assert [s["frozen"] for s in states] == [0, 0] and all(s["ours_inherited"] for s in states), states
