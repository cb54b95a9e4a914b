"""The mux attaches a module's source to the first run of it each interpreter gets.

A worker sends the module's path and sha1, not its bytes; without the mux's help
the target's first run of each module answered ``need_source`` and cost another
round trip. Real mux, real local target interpreters, real modules.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _mux_client
from tests.integration.runner_support import full_args, make_request, module_path

STACK = [{"method": "local", "python": sys.executable}]


@pytest.fixture
def client(playbook):
    """A client of a mux serving a stand-in playbook process (which checks the mux exits)."""
    client = _mux_client.connect_client(playbook.pid, [])
    try:
        yield client
    finally:
        client.close()


def _request(path, tmp_path):
    request = make_request(path, full_args({"data": "x"}, "ping", str(tmp_path)), name="ansible.modules.ping", send_source=False)
    return dict(request, source_path=path)


def _run(client, request):
    """As the connection sends a run: the path beside the request, for the mux."""
    request = dict(request)
    path = request.pop("source_path", None)
    source_path = None if request.get("source") is not None else path
    return client.call(STACK, _mux.RUN_MODULE, (request,), source_id=request["source_id"], source_path=source_path)


def test_the_first_run_of_a_module_needs_no_second_round_trip(client, tmp_path):
    request = _request(module_path("ping"), tmp_path)
    first = _run(client, request)
    assert "need_source" not in first and first["rc"] == 0, first
    assert b'"ping": "x"' in first["stdout"]
    assert _run(client, request)["rc"] == 0  # cached there since


def test_a_new_interpreter_gets_the_source_again(client, tmp_path):
    request = _request(module_path("ping"), tmp_path)
    assert _run(client, request)["rc"] == 0
    client.request("reset", stack=STACK)
    again = _run(client, request)
    assert "need_source" not in again and again["rc"] == 0, again


def test_a_module_file_changed_since_planning_is_not_sent_the_target_asks(client, tmp_path):
    copy = str(tmp_path / "ping.py")
    shutil.copy(module_path("ping"), copy)
    request = _request(copy, tmp_path)  # its sha1: the file as the worker read it
    with open(copy, "a") as fp:
        fp.write("\n# changed after planning\n")
    assert _run(client, request) == {"need_source": True}
    assert _run(client, dict(request, source=Path(module_path("ping")).read_bytes()))["rc"] == 0


def test_a_call_whose_arguments_are_not_encoded_is_refused_not_relayed(client, tmp_path):
    """The mux relays a call's arguments as the worker encoded them, unread: anything
    else (a decoded tuple from a client of another shape) is an error for that call."""
    with pytest.raises(Exception, match="malformed call"):
        client.request("call", key=_mux.stack_key(STACK), stack=api.encode(STACK), ref=_mux.RUN_MODULE, args=("x",))
    request = _request(module_path("ping"), tmp_path)
    assert _run(client, request)["rc"] == 0  # the mux serves on
