"""Skipping a test for what this machine lacks, except in CI.

A developer's machine may lack a pyenv Python, an ansible-core virtualenv or
namespaces: the test is skipped with the reason. CI installs everything
(``.ci/run``), so there a missing piece fails the run instead of hiding as a skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for ``reason``; with ``CI`` set, fail it instead."""
    if os.environ.get("CI"):
        pytest.fail("CI must have this: %s" % reason, pytrace=False)
    pytest.skip(reason)
