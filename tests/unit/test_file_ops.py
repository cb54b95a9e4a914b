"""The file operations a worker defers to its next call (``_files.apply_ops``), on real files."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._files import apply_ops


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_mkdir_write_chmod_rm_in_order(tmp_path):
    task = str(tmp_path / "home" / ".ansible" / "tmp" / "ansible-tmp-1")
    source = os.path.join(task, ".source")
    apply_ops([("mkdir", task, None), ("write", source, b"data", 0o600, None), ("chmod", [task, source], 0o700)])
    assert open(source, "rb").read() == b"data"
    assert mode(task) == 0o700 and mode(source) == 0o700
    assert mode(tmp_path / "home" / ".ansible") == 0o700  # parents as ``umask 77 && mkdir -p`` makes them
    assert os.listdir(task) == [".source"]  # no temporary file left beside it
    apply_ops([("rm", task)])
    assert not os.path.exists(task) and os.path.isdir(os.path.dirname(task))


def test_each_operation_may_run_twice(tmp_path):
    task = str(tmp_path / "t")
    ops = [("mkdir", task, None), ("write", os.path.join(task, "f"), b"x", 0o644, None), ("chmod", [task], 0o700)]
    apply_ops(ops)
    apply_ops(ops)  # a module call sent again with its source
    assert open(os.path.join(task, "f"), "rb").read() == b"x"
    apply_ops([("rm", task), ("rm", task)])


@pytest.mark.skipif(os.getuid() != 0, reason="giving files away takes root")
def test_root_gives_what_it_makes_to_the_owner(tmp_path):
    os.chmod(tmp_path, 0o755)
    task = str(tmp_path / "home" / "tmp" / "ansible-tmp-2")
    apply_ops([("mkdir", task, (65534, 65534)), ("write", os.path.join(task, "f"), b"x", 0o600, (65534, 65534))])
    for path in (tmp_path / "home", tmp_path / "home" / "tmp", task, os.path.join(task, "f")):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (65534, 65534), path
    assert os.stat(tmp_path).st_uid == 0  # what existed stays as it was


def test_an_unknown_operation_is_refused_after_those_before_it(tmp_path):
    task = str(tmp_path / "t")
    with pytest.raises(ValueError, match="unknown file operation 'truncate'"):
        apply_ops([("mkdir", task, None), ("truncate", task)])
    assert os.path.isdir(task)
    with pytest.raises(ValueError):
        apply_ops("rm -rf /")
