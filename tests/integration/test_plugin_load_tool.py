"""``scripts/plugin_load.py`` (what loading our connection plugin costs a worker) runs and reports.

The tool's numbers are timings and are never asserted; what is: it loads both plugins
in fresh children, counts their page faults, and attributes the time to phases, ours
including code from our private cache (unmarshalled, not compiled).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_plugin_load_reports_ours_and_the_baseline():
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "plugin_load.py"),
            "--runs",
            "2",
            "--baseline",
            "--phases",
            "--no-bytecode",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    line = re.compile(
        r"^(\S+): loading the plugin class in a fresh worker, median of 2: [\d.]+ ms wall, [\d.]+ ms CPU, (\d+) page faults$"
    )
    found = {m.group(1): int(m.group(2)) for m in map(line.match, out.splitlines()) if m}
    assert set(found) == {"ns.mitogen.ssh", "nsmbaseline.tiny.tiny"}, out
    assert all(faults > 0 for faults in found.values()), out
    ours = out.split("nsmbaseline.tiny.tiny:")[0]
    assert "unmarshalling code (our bundle's, and any .pyc)" in ours, out
    assert "compiling the plugin's files from source" in ours, out
