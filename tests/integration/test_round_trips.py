"""Round trips per task between the worker and the target's interpreters.

Counted by the connection (``_roundtrips``): each call, put and fetch it sends to an
interpreter is one request and one reply, whatever streams meanwhile; and each module
request the target sends across the link during them (the mux counts those). The counts
are asserted, not timings: a round trip costs the link's latency, which is what
makes a copy slow across a WAN. ``ROUND_TRIPS`` is the table the README's claim
rests on; a change that adds one fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook
from tests.testbed import Testbed
from tests.testbed.fixtures import _skip_if_unsupported

TASKS = [
    "command",
    "copy small",
    "copy small unchanged",
    "copy 1 MiB",
    "copy 1 MiB unchanged",
    "copy 2 MiB",
    "template",
    "fetch",
    "stat",
    "lineinfile",
    "file",
    "copy diff",
    "copy into dir",
    "copy follow unchanged",
]

# task -> round trips, without become and with become (sudo to root)
ROUND_TRIPS = {
    False: {
        "command": 1,
        "copy small": 1,  # stat, then copy, in one call (7 before: echo ~, mkdir, stat, put, chmod, copy, rm; then 2)
        "copy small unchanged": 1,  # stat, then file, in one call (5 before; then 2: stat, file)
        # over 64 KiB the file does not go with the stat (an equal dest would get it for
        # nothing): stat (and file, when equal) in one call, else the copy with the file
        "copy 1 MiB": 2,
        "copy 1 MiB unchanged": 1,
        "copy 2 MiB": 3,  # stat, put (streamed), copy
        "template": 1,
        "fetch": 1,  # ns.mitogen.fetch: stat and stream in one call (2 before: stat, fetch)
        "stat": 1,
        "lineinfile": 1,
        "file": 1,
        # not speculated (ansible's own two calls after the stat): the diff reads dest first,
        # a directory dest is stat'ed again, follow with equal checksums stats the link
        "copy diff": 3,
        "copy into dir": 3,
        "copy follow unchanged": 3,
    },
    True: {
        "command": 1,
        "copy small": 1,  # as the become user, in its own home (7 before, 5 of them as the login user; then 2)
        "copy small unchanged": 1,
        "copy 1 MiB": 2,
        "copy 1 MiB unchanged": 1,
        "copy 2 MiB": 3,
        "template": 1,
        "fetch": 1,  # ns.mitogen.fetch: stat and stream in one call (2 before: stat, fetch)
        "stat": 1,
        "lineinfile": 1,
        "file": 1,
        "copy diff": 3,
        "copy into dir": 3,
        "copy follow unchanged": 3,
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


def run_tasks(testbed, tmp_path, become, env=None):
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
    args += ["-e", "nsm_run=%s" % tmp_path.name]
    args += ["-e", "nsm_fetched=%s" % fetched, "-e", "nsm_big_sha1=%s" % hashlib.sha1(data).hexdigest()]
    env = dict(env or {}, NS_MITOGEN_ROUND_TRIPS=str(trips))
    rc, recap, log = run_playbook(tmp_path, inv, "round_trips.yml", *args, env=env)
    assert rc == 0, log[-3000:]
    lines = [json.loads(line) for line in trips.read_text().splitlines()]
    assert lines[0]["action"] == "ansible.builtin.command"  # the first task warms the interpreters
    assert [line["action"].rpartition(".")[2] for line in lines[1 : len(TASKS) + 1]] == [t.split()[0] for t in TASKS]
    assert (fetched / "h1" / "tmp" / ("nsm-rt-%s" % become) / "big").read_bytes() == data
    return dict(zip(TASKS, lines[1:]))


@pytest.mark.parametrize("strategy", ["ansible.builtin.linear", "ns.mitogen.linear"], ids=["builtin", "ours"])
@pytest.mark.parametrize("become", [False, True], ids=["login", "become"])
def test_round_trips_per_task(own_host, tmp_path, become, strategy):
    """Under the built-in linear (the connection alone: copy's hook installs itself in the
    worker) and under ours, the same counts."""
    counts = run_tasks(own_host, tmp_path, become, env={"ANSIBLE_STRATEGY": strategy})
    print(json.dumps({task: [line["trips"], line["target_requests"]] for task, line in counts.items()}))
    assert {task: line["total"] for task, line in counts.items()} == ROUND_TRIPS[become]


FIRST_USE = ["command", "ping", "stat", "lineinfile", "file", "copy", "template", "setup", "find"]

# task -> link round trips (the worker's calls and the target's module requests), each
# task's module new to its interpreter, without become and with become (sudo to root;
# ping and find run as the login user)
# (before the module_utils went with a module's first run, command, the interpreter's
# first module, took 2: it asked for basic's tree; file and setup took 2 too: each asked
# once for module_utils that basic does not import)
FIRST_USE_TRIPS = {
    False: dict.fromkeys(FIRST_USE, 1),  # copy and template: stat, then copy, in one call (2 before)
    True: dict.fromkeys(FIRST_USE, 1),
}
FIRST_USE_REQUESTS = dict.fromkeys(FIRST_USE, 0)  # the module requests among them


# task -> calls that carried a module source (the module's first run in its interpreter)
FIRST_USE_SOURCES = dict(dict.fromkeys(FIRST_USE, 1), template=0)  # template: copy's modules, sent already


def run_first_use(testbed, tmp_path, become, env=None):
    template = tmp_path / "t.j2"
    template.write_text("host {{ inventory_hostname }}\n")
    trips = tmp_path / "trips.jsonl"
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    args = ["-e", "nsm_become=%s" % become, "-e", "nsm_template=%s" % template]
    env = dict(env or {}, NS_MITOGEN_ROUND_TRIPS=str(trips))
    rc, recap, log = run_playbook(tmp_path, inv, "first_use.yml", *args, env=env)
    assert rc == 0, log[-3000:]
    lines = [json.loads(line) for line in trips.read_text().splitlines()]
    assert [line["action"].rpartition(".")[2] for line in lines] == FIRST_USE
    return dict(zip(FIRST_USE, lines))


@pytest.mark.parametrize("become", [False, True], ids=["login", "become"])
def test_first_use_of_a_module_is_one_round_trip(own_host, tmp_path, become):
    """A module new to its interpreter: its module_utils go with its first run, so the
    target asks for none across the link (a become interpreter asks its login parent,
    on the host, for what that one has). The connection alone (the built-in linear)."""
    counts = run_first_use(own_host, tmp_path, become)
    print(json.dumps({task: [line["trips"], line["target_requests"]] for task, line in counts.items()}))
    assert {task: sum(line["target_requests"].values()) for task, line in counts.items()} == FIRST_USE_REQUESTS
    assert {task: line["total"] for task, line in counts.items()} == FIRST_USE_TRIPS[become]
    assert {task: line["sources"] for task, line in counts.items()} == FIRST_USE_SOURCES


@pytest.mark.parametrize("become", [False, True], ids=["login", "become"])
def test_next_module_is_sent_ahead_under_our_strategy(own_host, tmp_path, become):
    """Under ns.mitogen.linear, each host's next module (and its module_utils) goes to the
    host's login interpreter as the current task is queued: the next call carries no
    source, also when it runs as another user (a become interpreter takes the source
    and the module_utils from its login interpreter, on the host), and the target asks
    for nothing across the link. Not the first two tasks: as the first is queued, the
    host has no interpreter yet."""
    counts = run_first_use(own_host, tmp_path, become, env={"ANSIBLE_STRATEGY": "ns.mitogen.linear"})
    sources = {task: line["sources"] for task, line in counts.items()}
    print(json.dumps(sources))
    assert {task: line["total"] for task, line in counts.items()} == FIRST_USE_TRIPS[become]
    assert {task: sum(line["target_requests"].values()) for task, line in counts.items()} == FIRST_USE_REQUESTS
    assert sources == dict(dict.fromkeys(FIRST_USE, 0), command=1, ping=1)


def test_a_module_is_sent_ahead_once_per_host(own_host, tmp_path):
    """Under ns.mitogen.linear the main process sends a host's next module ahead once per
    module (not once per task): it is recorded as sent once the host has run a module of
    ours (before that the mux has no interpreter to send it to and drops it), and
    forgotten when the host's interpreters are reset. The multiplexer counts what it
    received; every call after the first two still carries no source."""
    trips, report = tmp_path / "trips.jsonl", tmp_path / "mux.jsonl"
    inv = inventory(own_host, tmp_path / "hosts", hosts=("h1",))
    env = {"ANSIBLE_STRATEGY": "ns.mitogen.linear", "NS_MITOGEN_MUX_RUSAGE": str(report), "NS_MITOGEN_ROUND_TRIPS": str(trips)}
    rc, recap, log = run_playbook(tmp_path, inv, "send_ahead_once.yml", env=env)
    assert rc == 0, log[-3000:]
    deadline = time.monotonic() + 10
    while not (report.exists() and report.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)  # written as the mux exits, after the run
    (mux,) = [json.loads(line) for line in report.read_text().splitlines()]
    # c1 queued: c2's (dropped: no interpreter yet); c2 queued: c3's (recorded); c3-c5: none;
    # after the reset, c6 queued: c7's (not recorded: a new interpreter); c7 queued: c8's.
    assert mux["ahead_requests"] == 4, mux
    sources = [json.loads(line)["sources"] for line in trips.read_text().splitlines()]
    assert sources == [1, 0, 0, 0, 0, 1, 0, 0], sources
