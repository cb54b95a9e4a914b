"""Python interpreters available for targets.

Owns discovering pyenv's interpreters: `pyenv_root()` (from `pyenv root`,
else $PYENV_ROOT, else /root/.pyenv) and `pythons()`, mapping a version
"X.Y" to `<root>/versions/<X.Y.Z>/bin/python` for every installed version
whose interpreter exists (the newest patch release wins).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

DEFAULT_ROOT = Path("/root/.pyenv")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@functools.lru_cache(maxsize=1)
def pyenv_root() -> Path:
    """pyenv's root directory."""
    exe = shutil.which("pyenv") or (DEFAULT_ROOT / "bin" / "pyenv")
    try:
        out = subprocess.run([str(exe), "root"], capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    env = os.environ.get("PYENV_ROOT")
    return Path(env) if env else DEFAULT_ROOT


def pythons() -> dict[str, str]:
    """{"2.7": "/root/.pyenv/versions/2.7.18/bin/python", ...} for existing interpreters."""
    versions = pyenv_root() / "versions"
    best: dict[str, tuple[tuple[int, int, int], str]] = {}
    try:
        entries = sorted(os.listdir(versions))
    except OSError:
        return {}
    for entry in entries:
        match = _VERSION_RE.match(entry)
        if not match:
            continue
        exe = versions / entry / "bin" / "python"
        if not os.access(exe, os.X_OK):
            continue
        key = (int(match[1]), int(match[2]), int(match[3]))
        short = f"{key[0]}.{key[1]}"
        if short not in best or best[short][0] < key:
            best[short] = (key, str(exe))
    ordered = sorted(best.items(), key=lambda item: item[1][0])
    return {short: path for short, (_unused, path) in ordered}
