"""run_command's children without fork(): ansible's own umask-only preexec_fn, recognised.

The function under test gets the real ``preexec`` closure that the installed
ansible-core's ``AnsibleModule.run_command`` makes (its code object, taken from
run_command's own code, with the same globals and cell), and the children are real
processes whose umask is read back.
"""

from __future__ import annotations

import os
import subprocess
import types

import pytest

basic = pytest.importorskip("ansible.module_utils.basic")

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _hooks  # noqa: E402


def ansible_preexec(umask):
    """The closure ``run_command(..., umask=umask)`` passes to Popen, made from its own code."""
    found = [c for c in basic.AnsibleModule.run_command.__code__.co_consts if getattr(c, "co_name", None) == "preexec"]
    assert len(found) == 1, "run_command no longer defines one preexec"
    code = found[0]
    assert code.co_freevars == ("umask",), "ansible <= 2.16 form (calls self._restore_signal_handlers): not recognised"
    return types.FunctionType(code, basic.__dict__, "preexec", None, (types.CellType(umask),))


def child_umask(kwargs):
    proc = subprocess.Popen(["sh", "-c", "umask"], stdout=subprocess.PIPE, **kwargs)
    out, _unused = proc.communicate()
    return out.decode().strip()


@pytest.mark.parametrize("umask, expected", [(None, None), (0, None), (0o027, 0o027)])
def test_ansible_preexec_becomes_popen_umask(umask, expected):
    kwargs = {"preexec_fn": ansible_preexec(umask), "close_fds": True}
    spawn = _hooks.spawn_kwargs(kwargs)
    assert "preexec_fn" not in spawn and spawn["close_fds"] is True
    assert spawn.get("umask") == expected
    assert "preexec_fn" in kwargs  # the caller's dict is left alone
    # the child sees what the preexec would have set
    old = os.umask(0o022)
    try:
        assert child_umask(spawn) == child_umask(kwargs) == ("%04o" % (expected if expected is not None else 0o022))
    finally:
        os.umask(old)


def test_other_preexec_functions_are_left_alone():
    for func in (lambda: os.umask(0o011), os.setsid, print):
        kwargs = {"preexec_fn": func}
        assert _hooks.spawn_kwargs(kwargs) is kwargs
    assert child_umask({"preexec_fn": lambda: os.umask(0o011)}) == "0011"


def test_recognised_by_code_not_by_origin():
    """A function with the same code and globals does the same: it is handled too."""

    def preexec():
        if umask:
            os.umask(umask)

    umask = 0o011
    spawn = _hooks.spawn_kwargs({"preexec_fn": preexec})
    assert spawn == {"umask": 0o011}


def test_same_code_with_another_os_is_left_alone():
    func = ansible_preexec(0o027)
    fake_globals = dict(basic.__dict__, os=types.SimpleNamespace(umask=os.umask))
    impostor = types.FunctionType(func.__code__, fake_globals, "preexec", None, func.__closure__)
    kwargs = {"preexec_fn": impostor}
    assert _hooks.spawn_kwargs(kwargs) is kwargs


def test_explicit_umask_or_negative_umask_is_left_alone():
    kwargs = {"preexec_fn": ansible_preexec(0o027), "umask": 0o077}
    assert _hooks.spawn_kwargs(kwargs) is kwargs
    kwargs = {"preexec_fn": ansible_preexec(-5)}
    assert _hooks.spawn_kwargs(kwargs) is kwargs
