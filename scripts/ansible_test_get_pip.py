# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for ansible-test's get-pip.py: bootstrap pip without ci-files.testing.ansible.com.

ansible-test creates each sanity virtualenv without pip, then runs its cached
``get_pip_<version>.py`` with the pins it wants (``pip==25.2``, plus get-pip's own
``--no-setuptools``/``--no-wheel``). ``scripts/sanity`` puts this file at that
cache path, so the bootstrap takes pip from the interpreter's own ``ensurepip``
and then lets that pip install the exact pins from the package index.

ensurepip runs in a child process on purpose: in-process it sets
PIP_CONFIG_FILE=/dev/null in os.environ, which would also hide the system's pip
configuration (certificate bundle, index) from the install that follows.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install"] + args, check=True)


if __name__ == "__main__":
    main()
