"""The standard-library snapshot's test of what is stdlib (``_snapshots._is_stdlib``)."""

from __future__ import annotations

import os
import tempfile
import types
from importlib.machinery import ModuleSpec

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _snapshots


def _module(name: str, origin: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = ModuleSpec(name, None, origin=origin)
    return module


def test_a_module_served_by_the_controller_is_not_stdlib_even_when_the_cwd_is_gone():
    """Our modules' origins ("master:<path>") are not paths: resolving one against a
    removed cwd failed every module run of a become user whose cwd was gone."""
    here = os.getcwd()
    gone = tempfile.mkdtemp()
    os.chdir(gone)
    os.rmdir(gone)
    try:
        assert _snapshots._is_stdlib("served", _module("served", "master:/x/ansible/module_utils/basic.py")) is False
        assert _snapshots._is_stdlib("json", __import__("json")) is True
    finally:
        os.chdir(here)
