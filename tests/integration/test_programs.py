"""Binary and script modules run from memory files, or where there are none, as vanilla does.

Each test calls the runner (``_runner.run_module`` with a ``style``) in a real local
interpreter: the current Python (``os.memfd_create``: the program and its arguments
are /proc/self/fd paths, nothing written), and Python 3.6, which has no
``memfd_create`` (vanilla's temp path below the request's ``tmp``, removed after).
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

SCRIPT = b"""#!/bin/sh
printf '{"program": "%s", "args_path": "%s", "args": "%s"}' "$0" "$1" "$(cat "$1")"
"""


def request(tmp: str, **extra):
    return dict(
        {
            "name": "nsm_script",
            "source": SCRIPT,
            "source_id": hashlib.sha1(SCRIPT).hexdigest(),
            "args": "word=hello",
            "args_file": True,
            "profile": None,
            "env": {},
            "style": "script",
            "argv": ["/bin/sh"],
            "tmp": tmp,
        },
        **extra,
    )


def test_script_runs_from_memory_files(target, tmp_path):
    reply = target.call(_runner.run_module, request(str(tmp_path / "remote_tmp")))
    assert reply["rc"] == 0, reply
    result = json.loads(reply["stdout"])
    assert result["program"].startswith("/proc/self/fd/") and result["args_path"].startswith("/proc/self/fd/")
    assert result["args"] == "word=hello"
    assert not (tmp_path / "remote_tmp").exists()


def test_script_without_memfd_uses_a_temp_dir_and_removes_it(session, tmp_path):
    python = pythons().get("3.6")
    if python is None:
        unavailable("pyenv's Python 3.6 (the memfd-less fallback)")
    remote_tmp = tmp_path / "remote_tmp"
    ctx = session.local(python=python)
    try:
        reply = ctx.call(_runner.run_module, request(str(remote_tmp)))
    finally:
        ctx.shutdown()
    assert reply["rc"] == 0, reply
    result = json.loads(reply["stdout"])
    assert result["program"].startswith(str(remote_tmp) + "/ansible-tmp-"), result
    assert os.path.basename(result["program"]) == "module" and result["args"] == "word=hello"
    assert os.listdir(remote_tmp) == []  # the module's directory is gone


def test_missing_interpreter_is_reported_as_the_shell_would(target, tmp_path):
    reply = target.call(_runner.run_module, request(str(tmp_path), argv=["/nonexistent/nsm-interpreter"]))
    assert reply["rc"] == 127 and b"/nonexistent/nsm-interpreter: not found" in reply["stderr"]
