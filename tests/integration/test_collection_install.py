"""The built tarball installs with ansible-galaxy and its core runs from there."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def test_build_install_and_call_from_the_installed_copy(tmp_path):
    galaxy = os.path.join(VENV_BIN, "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", "--output-path", str(tmp_path / "dist"), ROOT], check=True, capture_output=True
    )
    (tarball,) = glob.glob(str(tmp_path / "dist" / "ns-mitogen-*.tar.gz"))
    subprocess.run([galaxy, "collection", "install", "-p", str(tmp_path / "cols"), tarball], check=True, capture_output=True)
    installed = tmp_path / "cols" / "ansible_collections" / "ns" / "mitogen"
    assert (installed / "plugins" / "module_utils" / "mitogen" / "api.py").is_file()
    assert not (installed / ".venv").exists() and not (installed / ".build").exists()
    code = (
        "import os, sys\n"
        "sys.path.insert(0, %r)\n"
        "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session\n"
        "import ansible_collections.ns.mitogen as m\n"
        "assert m.__path__[0].startswith(%r), m.__path__\n"
        "with Session() as s:\n"
        "    print(s.local().call(os.getppid) == os.getpid())\n" % (str(tmp_path / "cols"), str(tmp_path))
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
