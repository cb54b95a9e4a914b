"""Fixtures of the in-process runner tests (test_runner*.py): one Session per test
module, one local target interpreter shared by its tests, a Runner per test."""

from __future__ import annotations

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from tests.integration.runner_support import ALLOW, TARGET_PY, Runner


@pytest.fixture(scope="module")
def session():
    s = api.Session(allow_imports=ALLOW, connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def target(session):
    """One interpreter shared by every local test: state left by one test would show."""
    return session.local(python=TARGET_PY)


@pytest.fixture
def runner(target, tmp_path):
    return Runner(target, tmp_path)
