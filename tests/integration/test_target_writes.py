"""Nothing is written to a target beyond what vanilla pipelining would write.

Runs the connection playbook against a fresh testbed host and lists every path the
run created in the host's private /tmp, /home and /root, minus what the playbook
itself creates; whatever remains must be on the checked-in allow-list, where every
entry says why it is there.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import shutil
import struct
import subprocess

import pytest
import yaml

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

HERE = os.path.dirname(os.path.abspath(__file__))


def snapshot(host) -> set:
    found = set()
    for label, root in (("tmp", host.tmp_dir), ("home", host.home_dir), ("root", host.root_home_dir)):
        for dirpath, dirnames, filenames in os.walk(str(root)):
            rel = os.path.relpath(dirpath, str(root))
            if rel.startswith(".pyenv"):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                found.add(os.path.normpath(os.path.join(label, rel, name)))
    return found


def test_run_writes_only_allowed_paths(make_testbed, tmp_path):
    tb = make_testbed(hosts=1)
    host = tb["h1"]
    before = snapshot(host)
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",))
    rc, stats, output = run_playbook(tmp_path, inv, "connection_basics.yml", "-e", "fetch_dir=%s" % (tmp_path / "f"))
    assert rc == 0, output[-3000:]
    with open(os.path.join(HERE, "target_writes_allowed.yml")) as fp:
        allowed = yaml.safe_load(fp)
    assert all(entry.get("reason") for entry in allowed), "every allow-list entry needs a reason"
    created = {p for p in snapshot(host) - before if not p.startswith("tmp/nsm-conn")}
    unexpected = sorted(p for p in created if not any(fnmatch.fnmatch(p, e["path"]) for e in allowed))
    assert not unexpected, "the run wrote paths that are not on the allow-list: %s" % unexpected


class CreationWatch:
    """Names created (even if removed again) directly in some directories, by inotify.

    A snapshot after the run misses what a run creates and removes (AnsiballZ's
    payload directory in /tmp, the module and arguments files of Ansible's own path
    in remote_tmp); the kernel reports each creation.
    """

    IN_CREATE, IN_MOVED_TO, IN_NONBLOCK = 0x100, 0x80, 0o4000

    def __init__(self, directories) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.watches = {}
        for directory in directories:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(str(directory)), self.IN_CREATE | self.IN_MOVED_TO)
            assert wd >= 0, "%s: %s" % (directory, os.strerror(ctypes.get_errno()))
            self.watches[wd] = str(directory)

    def created(self) -> list:
        found: list = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + size].rstrip(b"\0").decode()
                found.append(os.path.join(self.watches[wd], name))
                offset += 16 + size

    def close(self) -> None:
        os.close(self.fd)


def _compile_binary_module(tmp_path) -> bool:
    """Compile the C binary module into ``tmp_path/library`` if a C compiler is here (static if it can)."""
    cc = shutil.which("cc")
    if cc is None:
        return False
    library = tmp_path / "library"
    library.mkdir()
    source = os.path.join(HERE, "playbooks", "module_styles", "nsm_c_binary.c")
    for flags in (["-static"], []):
        done = subprocess.run([cc, *flags, "-O1", "-o", str(library / "nsm_c_binary"), source], capture_output=True, check=False)
        if done.returncode == 0:
            return True
    return False


def test_every_module_style_runs_from_memory(make_testbed, tmp_path):
    """Binary, WANT_JSON, old-style and JSON_ARGS modules: run from memory files, nothing written.

    The remote temp directory is one nobody can create: Ansible's own path (module and
    arguments as temp files) fails there, and the playbook asserts that the modules
    saw /proc/self/fd paths; a module printing no JSON fails as under vanilla.
    """
    tb = make_testbed(hosts=1)
    host = tb["h1"]
    with_binary = _compile_binary_module(tmp_path)
    before = snapshot(host)
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",), ansible_remote_tmp="/proc/nsm-no-writes/tmp")
    env = {"ANSIBLE_LIBRARY": str(tmp_path / "library")} if with_binary else None
    home = host.user_home(tb.users.sudo)
    watch = CreationWatch([host.tmp_dir, home, host.root_home_dir])
    try:
        rc, stats, output = run_playbook(
            tmp_path, inv, "module_styles/module_styles.yml", "-e", "with_binary=%s" % with_binary, env=env
        )
        created_meanwhile = watch.created()
    finally:
        watch.close()
    assert rc == 0 and stats["h1"]["failed"] == 0, output[-3000:]
    assert stats["h1"]["ignored"] == 1, output[-3000:]
    created = snapshot(host) - before
    assert not created, "the run wrote: %s" % sorted(created)
    assert not created_meanwhile, "the run created (and perhaps removed): %s" % created_meanwhile


def test_async_jobs_write_only_their_job_files(make_testbed, tmp_path):
    """Async tasks, polled and not, with become to an unprivileged user: only vanilla's job files."""
    tb = make_testbed(hosts=1)
    host = tb["h1"]
    before = snapshot(host)
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",))
    rc, _stats, output = run_playbook(tmp_path, inv, "async_target_writes.yml")
    assert rc == 0, output[-3000:]
    with open(os.path.join(HERE, "target_writes_allowed.yml")) as fp:
        allowed = yaml.safe_load(fp)
    created = snapshot(host) - before
    unexpected = sorted(p for p in created if not any(fnmatch.fnmatch(p, e["path"]) for e in allowed))
    assert not unexpected, "the run wrote paths that are not on the allow-list: %s" % unexpected
    assert any(fnmatch.fnmatch(p, "home/nsm-sudo/.ansible_async/j*") for p in created)  # the job left for later
