"""Starting the multiplexer: real mux processes, each serving a stand-in playbook process.

``_mux_server.start()`` binds the socket and hands it to a new mux without waiting for it;
these tests check that clients are served from the first moment, that a running mux
is reused rather than replaced, that a stale socket file is taken over, and that a
client of a mux that dies reads a clear error instead of hanging.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import StreamError
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _mux_client, _mux_server


def mux_pid(path: str) -> int:
    client = _mux_client.MuxClient(path)
    try:
        return int(client.request("ping")["pid"])
    finally:
        client.close()


def test_clients_are_served_while_the_mux_is_still_starting(playbook):
    path = _mux_server.start(playbook.pid, [])
    client = _mux_client.MuxClient(path)  # at once: the socket listens before the mux has imported anything
    try:
        reply = client.request("ping")
        assert reply["contexts"] == 0 and reply["pid"] != os.getpid()
    finally:
        client.close()


def test_a_running_mux_is_reused_not_replaced(playbook):
    path = _mux_server.start(playbook.pid, [])
    first = mux_pid(path)
    assert _mux_server.start(playbook.pid, []) == path
    client = _mux_client.connect_client(playbook.pid, [])
    try:
        assert client.request("ping")["pid"] == first
    finally:
        client.close()


def test_the_first_module_runs_preparation_waits_for_the_first_child(playbook):
    """The prepare thread (CPU-bound) starts as the first child spawns, not at start-up,
    where it held the GIL while the first connection's thread was spawning ssh."""
    path = _mux_server.start(playbook.pid, [])
    client = _mux_client.MuxClient(path)
    try:
        time.sleep(0.5)
        assert client.request("ping")["prepared"] is False
        client.request("connect", stack=[{"method": "local", "python": sys.executable}])
        assert client.request("ping")["prepared"] is True
    finally:
        client.close()


def test_a_stale_socket_file_is_taken_over(playbook):
    path = _mux.socket_path(playbook.pid)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # bound, never listening: what a killed mux leaves behind
    stale.close()
    client = _mux_client.connect_client(playbook.pid, [])
    try:
        assert client.request("ping")["contexts"] == 0
    finally:
        client.close()


@pytest.mark.parametrize("log_dir", [False, True], ids=["no_log_dir", "log_dir"])
def test_a_client_of_a_mux_that_dies_names_it_and_removes_its_files(playbook, tmp_path, monkeypatch, log_dir):
    """The killed mux's pid, where its log is (or how to get one); its socket and
    lock file, which it could not remove itself, are gone."""
    if log_dir:
        monkeypatch.setenv("NS_MITOGEN_LOG_DIR", str(tmp_path))
    path = _mux_server.start(playbook.pid, [])
    pid = mux_pid(path)
    client = _mux_client.MuxClient(path)
    os.kill(pid, signal.SIGKILL)
    where = "see %s" % (tmp_path / ("mux-%d.log" % pid)) if log_dir else "set NS_MITOGEN_LOG_DIR to a directory"
    with pytest.raises(StreamError, match=r"multiplexer \(pid %d\) died: .*%s" % (pid, re.escape(where))):
        client.request("ping")
    client.close()
    assert not os.path.exists(path) and not os.path.exists(path + ".lock")


def test_a_client_that_connected_while_the_mux_started_names_it_when_it_dies(playbook, monkeypatch):
    """Its socket listens before the mux's pid is recorded: a client connecting then
    (another worker, at a play's first task) waits for the pid, so that it can name
    the mux even after another client removed the dead mux's files."""
    spawned, release = threading.Event(), threading.Event()
    spawn = _mux_server._spawn

    def slow_spawn(*args):
        pid = spawn(*args)
        spawned.set()
        release.wait(10)
        return pid

    monkeypatch.setattr(_mux_server, "_spawn", slow_spawn)
    starter = threading.Thread(target=_mux_server.start, args=(playbook.pid, []))
    starter.start()
    assert spawned.wait(10)
    path = _mux.socket_path(playbook.pid)
    early = []
    connecting = threading.Thread(target=lambda: early.append(_mux_client.MuxClient(path)))
    connecting.start()
    time.sleep(0.2)  # connected, and reading the pid before it is recorded
    release.set()
    starter.join()
    connecting.join()
    pid = mux_pid(path)
    late = _mux_client.MuxClient(path)
    os.kill(pid, signal.SIGKILL)
    for client in (late, early[0]):  # the first removes the files
        with pytest.raises(StreamError, match=r"multiplexer \(pid %d\) died" % pid):
            client.request("ping")
        client.close()
    assert not os.path.exists(path)


@pytest.mark.parametrize("index", [0, 1], ids=["first_mux", "second_mux"])
def test_files_a_killed_mux_left_are_removed_at_the_next_start(playbook, index):
    """Another run's, whose playbook process is gone: no client of it will ever come.
    Its second mux's too (``cpu_count`` 2: ``mux-<pid>.1.sock``)."""
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    stale = _mux.socket_path(gone.pid, index=index)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(stale)  # bound, never listening: what a killed mux leaves behind
    sock.close()
    with open(stale + ".lock", "w") as fp:
        fp.write("12345\n")
    _mux_server.start(playbook.pid, [])
    assert not os.path.exists(stale) and not os.path.exists(stale + ".lock")


def test_the_mux_keeps_none_of_its_starters_descriptors(playbook):
    """Forked from its starter, the mux holds no pipe of the starter's open.

    A reader waiting for end of file on the starter's stdout (or any pipe it holds)
    must not wait for the mux too; and the mux is in a session of its own, away from
    the terminal's Ctrl-C.
    """
    read_end, write_end = os.pipe()
    try:
        path = _mux_server.start(playbook.pid, [])
        pid = mux_pid(path)
        pipe = os.readlink("/proc/self/fd/%d" % write_end)
        held = _descriptors(pid)
        assert pipe not in held.values(), held
        assert [held[str(fd)] for fd in (0, 1, 2)] == [os.devnull] * 3
        assert os.getsid(pid) == pid
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 1) == b""  # end of file: no other writer left
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def _descriptors(pid: int) -> dict:
    """What ``pid``'s descriptors point at (one it closes meanwhile is left out)."""
    held = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            held[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:  # the mux, still starting, closed it meanwhile
            pass
    return held
