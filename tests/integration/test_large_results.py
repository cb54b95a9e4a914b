"""Results over the frame limit fail their own call or task, never the connection.

A frame over ``_wire.DEFAULT_MAX_MESSAGE`` makes the receiving side drop the whole
stream (every context behind it). So an oversized reply or request must become an
error for that one call, and a module's or command's oversized output must fail
that one task with a message saying what to do, while the interpreter's memory
stays bounded and the next task runs in the same interpreter.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _target, api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import DEFAULT_MAX_MESSAGE
from tests.integration import runner_support
from tests.integration.runner_support import decode, write_module
from tests.integration.test_ansible_connection import ROOT, inventory, run_playbook

MIB = 1024 * 1024


# -- the core: one call fails, the stream stays ---------------------------------------------
def test_oversized_reply_fails_the_call_not_the_stream(target):
    pid = target.call(os.getpid)
    with pytest.raises(api.CallError) as info:
        target.call(os.urandom, DEFAULT_MAX_MESSAGE + MIB)
    assert info.value.type_name == "ResultTooLarge"
    assert "over the frame limit of %d bytes" % DEFAULT_MAX_MESSAGE in str(info.value)
    assert "write it to a file on the target and fetch that file" in str(info.value)
    assert target.call(os.getpid) == pid


def test_oversized_request_fails_the_call_not_the_stream(target):
    pid = target.call(os.getpid)
    with pytest.raises(api.CallError) as info:
        target.call(len, b"x" * (DEFAULT_MAX_MESSAGE + MIB))
    assert "over the frame limit of %d bytes" % DEFAULT_MAX_MESSAGE in str(info.value)
    assert target.call(os.getpid) == pid


# -- module output: over the limit, a failed result; never read into memory -----------------
CHATTY = """
import os
import sys

from ansible.module_utils.basic import AnsibleModule


def _hwm_kib():
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    module = AnsibleModule(argument_spec=dict(mib=dict(type="int", default=0), stream=dict(type="str", default="stdout")))
    out = sys.stdout if module.params["stream"] == "stdout" else sys.stderr
    block = ("x" * 1023 + "\\n") * 1024
    for _unused in range(module.params["mib"]):
        out.write(block)
    out.flush()
    module.exit_json(changed=False, pid=os.getpid(), uid=os.getuid(), hwm_kib=_hwm_kib())


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_module_output_over_the_limit_is_a_failed_result(runner, tmp_path, stream):
    path = write_module(tmp_path, "nsm_chatty", CHATTY)
    reply = runner.run(path, {"mib": 100, "stream": stream})
    assert reply["rc"] == 1 and reply["stderr"] == b"", reply["stderr"][:200]
    result = decode(reply["stdout"])
    assert result["failed"] is True
    msg = result["msg"]
    printed = re.search(r"module ansible\.modules\.nsm_chatty printed (\d+) bytes of output", msg)
    assert printed and 100 * MIB < int(printed.group(1)) < 100 * MIB + 1024, msg
    assert "more than the %d bytes" % (DEFAULT_MAX_MESSAGE - 1048576) in msg
    assert "write large output to a file on the target and fetch that file" in msg
    small = decode(runner.run(path, {"mib": 1, "stream": stream})["stdout"])  # same interpreter, next run
    assert small["hwm_kib"] < 256 * 1024, small


def test_module_output_under_the_limit_comes_back_whole(runner, tmp_path):
    path = write_module(tmp_path, "nsm_chatty", CHATTY)
    reply = runner.run(path, {"mib": 62})
    assert reply["rc"] == 0 and reply["stdout"].count(b"x" * 1023 + b"\n") == 62 * 1024
    assert decode(reply["stdout"])["changed"] is False
    del reply
    after = decode(runner.run(path, {})["stdout"])
    assert after["hwm_kib"] < 256 * 1024, after  # the output read once, encoded once, never copied to send


def test_slurp_of_a_file_no_reply_can_carry_is_refused_unrun(runner, tmp_path):
    path = runner_support.module_path("slurp")
    big = tmp_path / "big.bin"
    with open(big, "wb") as fp:
        fp.truncate(48 * MIB)  # 64 MiB of base64: over the limit
    result = decode(runner.run(path, {"src": str(big)})["stdout"])
    assert result["failed"] is True and "the module was not run" in result["msg"], result
    assert "slurp of %s (%d bytes) would return" % (big, 48 * MIB) in result["msg"]
    assert "Use ansible.builtin.fetch" in result["msg"]
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * MIB)
    result = decode(runner.run(path, {"path": str(small)})["stdout"])
    assert result["content"] == base64.b64encode(b"x" * MIB).decode() and result["encoding"] == "base64"
    result = decode(runner.run(path, {"src": str(tmp_path / "missing")})["stdout"])
    assert result["failed"] is True and "not found" in result["msg"]  # the module's own words


# -- commands: output over the limit is drained, not kept, and the call fails -----------------
def test_command_output_over_the_limit_fails_the_call(target):
    pid = target.call(os.getpid)
    for use_pty in (False, True):
        with pytest.raises(api.CallError) as info:
            target.call(_target.exec_command, "head -c 100M /dev/zero; echo done >&2; exit 3", None, None, None, use_pty)
        assert info.value.type_name.endswith("OutputTooLarge")
        words = "printed %d bytes of output" % (100 * MIB + (6 if use_pty else 5))  # and done\n (\r\n on a pty)
        assert words in info.value.remote_message
        assert "exited with status 3" in info.value.remote_message
    assert target.call(os.getpid) == pid


def test_command_output_under_the_limit_and_input_as_communicate(target):
    data = os.urandom(3 * MIB)
    rc, out, err = target.call(_target.exec_command, "cat; echo err >&2", data)
    assert (rc, out, err) == (0, data, b"err\n")
    rc, out, err = target.call(_target.exec_command, "exit 4", data)  # input nobody reads
    assert (rc, out, err) == (4, b"", b"")


# -- through ansible-playbook: the task fails or streams, the connection stays ---------------
GIB = 1024 * MIB
HWM_LIMIT_KIB = 256 * 1024

PLAYBOOK = """\
- hosts: h1
  gather_facts: false
  tasks:
    - {name: login interpreter before, nsm_chatty: {}, register: login_before}
    - {name: become interpreter before, nsm_chatty: {}, register: root_before, become: true}
    - name: a module printing 100 MiB
      nsm_chatty: {mib: 100}
      register: chatty
      ignore_errors: true
    - name: the same module as root
      nsm_chatty: {mib: 100, stream: stderr}
      register: chatty_root
      become: true
      ignore_errors: true
    - name: a raw command printing 100 MiB
      ansible.builtin.raw: head -c 100M /dev/zero
      register: raw
      ignore_errors: true
    - name: a module printing 62 MiB, just under the limit, as root (relayed by the login interpreter)
      nsm_chatty: {mib: 62}
      register: under
      become: true
    - name: a 1 GiB root-only file, fetched with become
      ansible.builtin.fetch: {src: "{{ big }}", dest: "{{ fetch_dir }}"}
      register: fetched
      become: true
    - name: the user's own slurp of it, with become
      ansible.builtin.slurp: {src: "{{ big }}"}
      register: slurped
      become: true
      ignore_errors: true
    - name: fetched again, unchanged
      ansible.builtin.fetch: {src: "{{ big }}", dest: "{{ fetch_dir }}"}
      register: again
      become: true
    - name: a missing file, with become
      ansible.builtin.fetch: {src: /tmp/nsm-big/missing, dest: "{{ fetch_dir }}", fail_on_missing: false}
      register: missing
      become: true
    - {name: login interpreter after, nsm_chatty: {}, register: login_after}
    - {name: become interpreter after, nsm_chatty: {}, register: root_after, become: true}
    - ansible.builtin.raw: echo still here
      register: raw_after
    - ansible.builtin.assert:
        that:
          - chatty is failed and chatty.msg is search('printed 1048\\\\d{5} bytes of output')
          - chatty.msg is search('write large output to a file on the target and fetch that file')
          - chatty_root is failed and chatty_root.msg is search('stderr 1048\\\\d{5} bytes')
          - raw is failed and raw.msg is search('the command printed 104857600 bytes of output')
          - raw.msg is search('redirect its output to a file on the target')
          - under is not failed and under.pid == root_before.pid
          - fetched is changed and fetched.checksum == fetched.remote_checksum and fetched.md5sum | length == 32
          - fetched.dest == fetch_dir + '/h1' + big
          - again is not changed and again.checksum == fetched.checksum
          - slurped is failed and slurped.msg is search('the module was not run. Use ansible.builtin.fetch')
          - missing is not failed and missing.msg is search('does not exist')
          - login_after.pid == login_before.pid and root_after.pid == root_before.pid
          - root_before.uid == 0 and login_before.uid != 0
          - raw_after.stdout_lines == ['still here']
    - name: the interpreters' peak memory stayed bounded
      ansible.builtin.assert:
        that: [login_after.hwm_kib < %(hwm)d, root_after.hwm_kib < %(hwm)d]
        fail_msg: "VmHWM login {{ login_after.hwm_kib }} KiB, root {{ root_after.hwm_kib }} KiB"
"""


def _playbook_dir(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "nsm_chatty.py").write_text(CHATTY)
    play = tmp_path / "large.yml"
    play.write_text(PLAYBOOK % {"hwm": HWM_LIMIT_KIB})
    return play


@pytest.mark.testbed
def test_large_results_fail_or_stream_and_the_connection_stays(testbed, tmp_path):
    host_dir = testbed["h1"].tmp_dir / "nsm-big"
    host_dir.mkdir(mode=0o755)
    big = host_dir / "big.bin"
    fetch_dir = tmp_path / "fetched"
    try:
        with open(big, "wb") as fp:  # sparse: 1 GiB of zeros with a few bytes that tell it apart
            fp.write(b"head")
            fp.truncate(GIB)
            fp.seek(GIB - 4)
            fp.write(b"tail")
        os.chmod(big, 0o600)
        assert os.stat(big).st_uid == 0
        inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
        rc, stats, output = run_playbook(
            tmp_path, inv, str(_playbook_dir(tmp_path)), "-e", "fetch_dir=%s big=/tmp/nsm-big/big.bin" % fetch_dir
        )
        assert rc == 0 and stats["h1"]["failed"] == 0, output[-5000:]
        copy = fetch_dir / "h1" / "tmp" / "nsm-big" / "big.bin"
        assert copy.stat().st_size == GIB
        with open(copy, "rb") as fp:
            assert fp.read(4) == b"head" and fp.seek(GIB - 4) and fp.read(4) == b"tail"
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
        shutil.rmtree(fetch_dir, ignore_errors=True)


RELEASE_PLAYBOOK = """\
- hosts: h1
  gather_facts: false
  tasks:
    - {name: become interpreter before, nsm_chatty: {}, register: root_before, become: true}
    - name: a module printing 100 MiB (the target logs a warning, which the mux logs in turn)
      nsm_chatty: {mib: 100}
      register: chatty
      ignore_errors: true
    - name: a raw command printing 100 MiB
      ansible.builtin.raw: head -c 100M /dev/zero
      register: raw
      ignore_errors: true
    - name: a root-only file, fetched with become
      ansible.builtin.fetch: {src: /etc/sudoers, dest: "{{ fetch_dir }}"}
      register: fetched
      become: true
    - {name: become interpreter after, nsm_chatty: {}, register: root_after, become: true}
    - ansible.builtin.assert:
        that:
          - chatty is failed and chatty.msg is search('write large output to a file on the target')
          - raw is failed and raw.msg is search('redirect its output to a file on the target')
          - fetched is changed and fetched.checksum == fetched.remote_checksum
          - root_after.pid == root_before.pid
"""


@pytest.mark.testbed
@pytest.mark.parametrize("release", ["2.16", "2.21"])
def test_target_warnings_do_not_hang_the_mux_under_each_release(testbed, tmp_path, release):
    """Also the regression test of a mux hang: ansible wraps stdout/stderr writes in
    Display's lock, which 2.16's workers (and the mux forked from one) inherit held;
    the mux's broker thread logging the target's warning waited on it for ever."""
    from tests.integration.test_versions import bin_dir

    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "nsm_chatty.py").write_text(CHATTY)
    play = tmp_path / "release.yml"
    play.write_text(RELEASE_PLAYBOOK)
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    environ = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    cmd = [str(bin_dir(release) / "ansible-playbook"), "-i", inv, str(play), "-e", "fetch_dir=%s" % (tmp_path / "f")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=120, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
