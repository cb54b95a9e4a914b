"""Copy in one round trip: the target's branch predicate, and the worker's speculation.

``_followup.copy_branch`` must pick what ansible-core's ``_execute_remote_stat`` and
``_copy_file`` pick on the same stat result. ``_speculation.Speculation`` is driven
here as the connection drives it (``on_call`` for each call, the probe capturing the
call of each branch); the connection's one round trip is a recorded ``send_call``
that answers as the target's ``run_then`` would.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

pytest.importorskip("ansible")

from ansible.errors import AnsibleError  # noqa: E402

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._followup import copy_branch  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _speculation  # noqa: E402
from ansible_collections.ns.mitogen.plugins.plugin_utils._tmpdirs import TaskFiles  # noqa: E402

SHA = "a" * 40


def _stat_reply(stat: Any, rc: int = 0, **extra: Any) -> Dict[str, Any]:
    return dict({"rc": rc, "stdout": json.dumps({"changed": False, "stat": stat}).encode(), "stderr": b""}, **extra)


@pytest.mark.parametrize(
    ("stat", "force", "branch"),
    [
        ({"exists": False}, True, "changed"),  # missing: checksum "1", never equal
        ({"exists": False}, False, "changed"),  # force false copies a missing file
        ({"exists": True, "isdir": False, "checksum": SHA}, True, "unchanged"),
        ({"exists": True, "isdir": False, "checksum": "b" * 40}, True, "changed"),
        ({"exists": True, "isdir": False}, True, "changed"),  # no checksum: "", never equal
        ({"exists": True, "isdir": False, "checksum": SHA}, False, None),  # exists, not forced: nothing
        ({"exists": True, "isdir": True}, True, None),  # a directory: ansible stats again
        ({"exists": True, "checksum": SHA}, True, None),  # no isdir: ansible's KeyError, nothing run
        ({"exists": True, "isdir": False, "checksum": 1}, True, None),  # ansible raises: not a string
    ],
)
def test_the_branch_is_ansibles_on_the_same_stat(stat, force, branch):
    assert copy_branch(_stat_reply(stat), {"checksum": SHA, "force": force}) == branch


@pytest.mark.parametrize(
    "reply",
    [
        {"need_source": True},
        _stat_reply({"exists": False}, retire="a thread was left"),
        {"rc": 1, "stdout": b'{"failed": true, "msg": "no"}', "stderr": b""},
        {"rc": 0, "stdout": b"noise\n{}", "stderr": b""},
        {"rc": 0, "stdout": b'{"changed": false}', "stderr": b""},
        None,
    ],
)
def test_nothing_follows_a_stat_that_did_not_answer_plainly(reply):
    assert copy_branch(reply, {"checksum": SHA, "force": True}) is None


# -- the worker's side --------------------------------------------------------------------
STACK = [{"method": "ssh", "hostname": "h"}]
TMP = "/home/u/.ansible/tmp/ansible-tmp-1"
SOURCE = {"source_id": "s", "source_path": "/m/stat.py", "module_utils_dirs": None, "module_name": "ansible.modules.stat"}


class Connection:
    """What ``Speculation`` uses of the connection: its stack keys, task files, trip
    counts and one round trip (``send_call``, recorded and answered by ``target``);
    ``call`` folds the task's pending file operations as ``MitogenConnectionBase._call`` does."""

    def __init__(self, target: Any) -> None:
        self.task_files = TaskFiles(self)  # type: ignore[arg-type]
        self.key = _mux.stack_key(STACK)
        self.task_files.owner[TMP] = self.key
        self.task_files.stacks[self.key] = STACK
        self._trips: Dict[str, int] = {}
        self.speculation: Any = None
        self.sent: List[Any] = []
        self.target = target

    def stack_key(self, stack: Any) -> str:
        return _mux.stack_key(stack)

    def send_call(self, stack: Any, ref: Any, args: Any, source: Any) -> Any:
        self.sent.append((ref, args, source))
        self._trips["h"] = self._trips.get("h", 0) + 1
        return self.target(ref, args)

    def call(self, name: str, args: str, env: Any = None) -> Any:
        ops = self.task_files.take(self.key)
        request = {"name": name, "source_id": name, "args": args, "env": env or {}, "prelude": ops}
        source = dict(SOURCE, source_id=name, module_name=name)
        if self.speculation is not None:
            answered, reply = self.speculation.on_call(self, STACK, _mux.RUN_MODULE, (request,), source)  # type: ignore[arg-type]
            if answered:
                return reply
        return self.send_call(STACK, _mux.RUN_MODULE, (request,), source)


def _copy_file(connection: Connection, branch: str, mode: str = "0644") -> None:
    """What copy's ``_copy_file`` sends after its stat, in ``branch``: put then copy, or file."""
    if branch == "changed":
        connection.task_files.pending.setdefault(connection.key, []).append(("write", TMP + "/.source", b"data", 0o600, None))
        connection.call("ansible.modules.copy", '{"mode": "%s"}' % mode)
    else:
        connection.call("ansible.modules.file", '{"mode": "%s"}' % mode)


def _run_then(branch: str, follow_up: Any = None):
    """A target whose ``run_then`` took ``branch`` and answered ``follow_up`` for it."""

    def target(ref: Any, args: Any) -> Any:
        if ref != _mux.RUN_THEN:
            return {"rc": 0, "stdout": b'{"sent": true}', "stderr": b""}
        return {
            "first": _stat_reply({"exists": False}),
            "branch": branch,
            "then": follow_up or {"rc": 0, "stdout": b"{}", "stderr": b""},
        }

    return target


def _start(connection: Connection, real_mode: str = "0644") -> Any:
    """The real ``_copy_file``'s stat (its temporary directory's mkdir pending), with the speculation armed."""
    connection.task_files.pending[connection.key] = [("mkdir", TMP, None)]
    connection.speculation = _speculation.Speculation(lambda branch: _copy_file(connection, branch), SHA, True)
    return connection.call("ansible.modules.stat", "{}")


def test_the_stat_and_the_branch_go_in_one_call_and_answer_the_real_run():
    connection = Connection(_run_then("changed", {"rc": 0, "stdout": b'{"changed": true}', "stderr": b""}))
    first = _start(connection)
    assert json.loads(first["stdout"])["stat"] == {"exists": False}
    [(ref, (stat, then), source)] = connection.sent
    assert ref == _mux.RUN_THEN and stat["name"] == "ansible.modules.stat" and stat["prelude"] == [("mkdir", TMP, None)]
    assert then["changed"]["name"] == "ansible.modules.copy" and then["unchanged"]["name"] == "ansible.modules.file"
    assert then["changed"]["prelude"] == [("write", TMP + "/.source", b"data", 0o600, None)]  # the file goes with copy
    assert then["unchanged"]["prelude"] == []
    assert [s[0] for s in source["then_sources"]] == ["ansible.modules.copy", "ansible.modules.file"]
    assert connection._trips == {"h": 1}  # the probes counted nothing, and left the task's files as they were
    assert connection.task_files.pending == {} and connection.task_files.made == {TMP}
    _copy_file(connection, "changed")  # the real run: answered, not sent
    assert len(connection.sent) == 1 and connection.speculation.unasked() is None


def test_a_call_other_than_the_one_run_fails_loudly_and_is_not_sent():
    """The copy ran on the target with the stat; the real run then asks for a copy with other
    arguments: running it too would copy twice, so the task fails, naming the branch."""
    connection = Connection(_run_then("changed"))
    _start(connection)
    with pytest.raises(AnsibleError, match="changed branch ran on the target .* another call: module ansible.modules.copy"):
        _copy_file(connection, "changed", mode="0600")
    assert len(connection.sent) == 1


def test_a_branch_the_real_run_never_asks_for_is_reported():
    connection = Connection(_run_then("unchanged"))
    _start(connection)
    assert connection.speculation.unasked() == "unchanged"


def test_a_follow_up_that_did_not_run_is_sent_by_the_real_run():
    connection = Connection(_run_then("unchanged", {"need_source": True}))
    _start(connection)
    _copy_file(connection, "unchanged")
    assert [ref for ref, _args, _source in connection.sent] == [_mux.RUN_THEN, _mux.RUN_MODULE]
    assert connection.speculation.unasked() is None


def test_a_branch_whose_probe_sends_something_else_is_not_speculated():
    """follow: true with equal checksums stats again (``_compat_hooks.copy_probe``'s restat): that
    branch goes the vanilla way; a probe that sends a put or a command likewise."""
    connection = Connection(_run_then("changed"))
    connection.task_files.pending[connection.key] = [("mkdir", TMP, None)]

    def probe(branch: str) -> None:
        if branch == "unchanged":
            connection.speculation.refuse("push_file")  # type: ignore[union-attr]
        _copy_file(connection, branch)

    connection.speculation = _speculation.Speculation(probe, SHA, True)
    connection.call("ansible.modules.stat", "{}")
    [(_ref, (_stat, then), _source)] = connection.sent
    assert then["unchanged"] is None and then["changed"]["name"] == "ansible.modules.copy"


def test_an_environment_that_templates_anew_each_time_is_not_guessed():
    """Were ``environment: {T: "{{ 9 | random }}"}`` templated per module run (ansible-core
    templates it once per task), the probes' would differ from the stat's: speculating would
    run the copy with a value the real run might not send (and then fail it)."""
    connection = Connection(_run_then("changed"))
    connection.task_files.pending[connection.key] = [("mkdir", TMP, None)]
    clock = iter(range(10))

    def probe(branch: str) -> None:
        connection.call("ansible.modules.copy" if branch == "changed" else "ansible.modules.file", "{}", {"T": str(next(clock))})

    connection.speculation = _speculation.Speculation(probe, SHA, True)
    connection.call("ansible.modules.stat", "{}", {"T": str(next(clock))})
    assert [ref for ref, _args, _source in connection.sent] == [_mux.RUN_MODULE]  # the stat alone, as vanilla
