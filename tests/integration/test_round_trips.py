"""Round trips per task between the worker and the target's interpreters.

Counted by the connection (``_roundtrips``): each call, put and fetch it sends to an
interpreter is one request and one reply, whatever streams meanwhile. The counts
are asserted, not timings: a round trip costs the link's latency, which is what
makes a copy slow across a WAN. ``ROUND_TRIPS`` is the table the README's claim
rests on; a change that adds one fails here.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook
from tests.testbed import Testbed
from tests.testbed.fixtures import _skip_if_unsupported

TASKS = [
    "command",
    "copy small",
    "copy small unchanged",
    "copy 1 MiB",
    "copy 2 MiB",
    "template",
    "fetch",
    "stat",
    "lineinfile",
    "file",
]

# task -> round trips, without become and with become (sudo to root)
ROUND_TRIPS = {
    False: {
        "command": 1,
        "copy small": 2,  # stat, copy (7 before: echo ~, mkdir, stat, put, chmod, copy, rm)
        "copy small unchanged": 2,  # stat, file (5 before)
        "copy 1 MiB": 2,  # the file goes with the copy module's call
        "copy 2 MiB": 3,  # stat, put (streamed), copy
        "template": 2,
        "fetch": 1,  # ns.mitogen.fetch: stat and stream in one call (2 before: stat, fetch)
        "stat": 1,
        "lineinfile": 1,
        "file": 1,
    },
    True: {
        "command": 1,
        "copy small": 2,  # as the become user, in its own home (7 before, 5 of them as the login user)
        "copy small unchanged": 2,
        "copy 1 MiB": 2,
        "copy 2 MiB": 3,
        "template": 2,
        "fetch": 1,  # ns.mitogen.fetch: stat and stream in one call (2 before: stat, fetch)
        "stat": 1,
        "lineinfile": 1,
        "file": 1,
    },
}


@pytest.fixture(scope="module")
def own_host():
    """A host of these tests' own: tasks that become root write root's ``~/.ansible``
    there (a module's own temporary directory, as vanilla's do), which the shared
    testbed's h1 must not keep (``test_testbed`` checks its homes are pristine)."""
    _skip_if_unsupported()
    tb = Testbed(hosts=1)
    try:
        tb.start()
        yield tb
    finally:
        tb.close()


def run_tasks(testbed, tmp_path, become):
    big = tmp_path / "big"
    data = os.urandom(1024 * 1024)
    big.write_bytes(data)
    (tmp_path / "bigger").write_bytes(os.urandom(2 * 1024 * 1024))
    template = tmp_path / "t.j2"
    template.write_text("host {{ inventory_hostname }}\n")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    trips = tmp_path / "trips.jsonl"
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    args = [
        "-e",
        "nsm_become=%s" % become,
        "-e",
        "nsm_big=%s" % big,
        "-e",
        "nsm_bigger=%s" % (tmp_path / "bigger"),
        "-e",
        "nsm_template=%s" % template,
    ]
    args += ["-e", "nsm_fetched=%s" % fetched, "-e", "nsm_big_sha1=%s" % hashlib.sha1(data).hexdigest()]
    rc, recap, log = run_playbook(tmp_path, inv, "round_trips.yml", *args, env={"NS_MITOGEN_ROUND_TRIPS": str(trips)})
    assert rc == 0, log[-3000:]
    lines = [json.loads(line) for line in trips.read_text().splitlines()]
    assert lines[0]["action"] == "ansible.builtin.command"  # the first task warms the interpreters
    assert [line["action"].rpartition(".")[2] for line in lines[1 : len(TASKS) + 1]] == [t.split()[0] for t in TASKS]
    assert (fetched / "h1" / "tmp" / ("nsm-rt-%s" % become) / "big").read_bytes() == data
    return dict(zip(TASKS, lines[1:]))


@pytest.mark.parametrize("become", [False, True], ids=["login", "become"])
def test_round_trips_per_task(own_host, tmp_path, become):
    counts = run_tasks(own_host, tmp_path, become)
    print(json.dumps({task: line["trips"] for task, line in counts.items()}))
    assert {task: line["total"] for task, line in counts.items()} == ROUND_TRIPS[become]
