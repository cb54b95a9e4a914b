"""docs/core.md's runnable API example runs as written (against the installed collection)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_api_example_runs():
    if not os.path.isdir(os.path.join(ROOT, ".build", "installed", "ansible_collections", "ns", "mitogen")):
        pytest.fail("run scripts/setup first: the example imports the installed collection")
    with open(os.path.join(ROOT, "docs", "core.md")) as fp:
        blocks = re.findall(r"```python\n(.*?)```", fp.read(), re.S)
    out = subprocess.run([sys.executable, "-c", blocks[0]], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "True" and re.fullmatch(r"[0-9a-f]{64}", lines[1])
