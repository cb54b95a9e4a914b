"""One command through a transport where no interpreter runs (``_oneshot.run_once``), on real sshd.

The path of ``raw`` on a target without Python: ssh runs the command once, its
password prompt typed on a private pty, the command's input streamed and its
output collected apart.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _methods
from ansible_collections.ns.mitogen.plugins.plugin_utils import _oneshot

pytestmark = pytest.mark.testbed


def spec_for(tb, user, **extra):
    spec = {"method": "ssh", "hostname": tb["h1"].address, "username": user.name, "known_hosts_file": str(tb.known_hosts)}
    spec.update(extra)
    return spec


def argv_for(spec, command, tty=False):
    argv = _methods.make(spec).argv([])
    argv[-1] = command  # as ns.mitogen.ssh's _one_shot_argv
    if tty:
        argv.insert(argv.index("--"), "-tt")
    return argv


def test_a_key_login_streams_a_large_input_and_keeps_stdout_and_stderr_apart(testbed):
    spec = spec_for(testbed, testbed.users.key, identity_file=str(testbed.key))
    data = bytes(range(256)) * 8192  # 2 MiB: more than any pipe buffer
    rc, out, err = _oneshot.run_once(spec, argv_for(spec, "sha1sum; echo to-stderr >&2; exit 3"), data)
    assert rc == 3 and out.split()[0].decode() == hashlib.sha1(data).hexdigest()
    assert err.strip() == b"to-stderr"


def test_a_password_login_is_answered_on_the_pty(testbed):
    user = testbed.users.pw
    spec = spec_for(testbed, user, password=user.password, ssh_args=["-o", "PubkeyAuthentication=no"])
    rc, out, err = _oneshot.run_once(spec, argv_for(spec, "id -un; echo e >&2"))
    assert (rc, out.strip(), err.strip()) == (0, user.name.encode(), b"e")
    rc, out, _err = _oneshot.run_once(spec, argv_for(spec, "id -un", tty=True))  # raw's -tt: one merged stream
    assert rc == 0 and out == user.name.encode() + b"\r\n"


def test_a_wrong_password_ends_quickly_with_ssh_s_failure(testbed):
    spec = spec_for(testbed, testbed.users.pw, password="not-the-password", ssh_args=["-o", "PubkeyAuthentication=no"])
    started = time.monotonic()
    rc, _out, err = _oneshot.run_once(spec, argv_for(spec, "true"))
    assert rc == 255 and b"Permission denied" in err
    assert time.monotonic() - started < 10
