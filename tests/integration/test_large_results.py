"""Results over the frame limit fail their own call or task, never the connection.

A frame over ``_wire.DEFAULT_MAX_MESSAGE`` makes the receiving side drop the whole
stream (every context behind it). So an oversized reply or request must become an
error for that one call, and a module's or command's oversized output must fail
that one task with a message saying what to do, while the interpreter's memory
stays bounded and the next task runs in the same interpreter.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import DEFAULT_MAX_MESSAGE

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
