# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen's controller-only code (private package): its code is ``_package.py``.

This file runs ``_package.py`` in the package's own namespace, its code object from our
private cache (``package_entry()``) when valid, else compiled from its source (and then
cached by ``install()``). Ansible's collection loader compiles this file from source in
every process that loads it, every Ansible worker under a built-in strategy included,
where compiling costs ~0.4 ms a KB of code (a fresh fork's cold memory): so it holds only
what finds and checks that one entry. Its rules are the cache's (``_package.py``): the
user's own directory that nobody else may enter, an entry of the user's that nobody else
may read, recording ``_package.py``'s path and its inode, size, modification and change
times (a rewritten file is seen as changed, as the bundle's sources are).
"""

from __future__ import annotations

import marshal
import os
import sys
from importlib.util import MAGIC_NUMBER
from typing import TYPE_CHECKING, Any, Optional, Tuple

#: Our private code cache: a directory, or "off".
CODE_CACHE_ENV = "NS_MITOGEN_CODE_CACHE"
PACKAGE_HEADER = b"nsm-package-1\n" + MAGIC_NUMBER


def cache_directory() -> Optional[str]:
    """Our private cache's directory name, or None (``$NS_MITOGEN_CODE_CACHE`` off, 0 or empty)."""
    setting = os.environ.get(CODE_CACHE_ENV)
    if setting is not None and setting.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ns.mitogen", "code")
    return os.path.join(os.path.expanduser(setting) if setting else base, sys.implementation.cache_tag)


def stamp(path: str, st: Any = None) -> Tuple[int, int, int, int]:
    """What the cache records of a source file (``os.stat(path)`` or ``st``): inode, size,
    modification and change times."""
    if st is None:
        st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def package_entry(directory: Optional[str]) -> Tuple[str, Tuple[int, int, int, int], Optional[str]]:
    """``_package.py``'s path, its ``stamp()`` and its entry in the cache ``directory`` (None without one)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_package.py")
    st = os.stat(path)
    entry = os.path.join(directory, "package-%x-%x" % (st.st_dev, st.st_ino)) if directory else None
    return path, stamp(path, st), entry


def _package_code() -> Tuple[Any, Optional[str]]:
    """``_package.py``'s code object, and the entry it came from (None: compiled here)."""
    path, stamp, entry = package_entry(cache_directory())
    if entry:
        try:
            folder = os.lstat(os.path.dirname(entry))
            with open(os.open(entry, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fp:
                st = os.fstat(fp.fileno())
                blob = fp.read()
            uid = os.geteuid()
            if (folder.st_uid, st.st_uid) == (uid, uid) and not (folder.st_mode | st.st_mode) & 0o077:
                if folder.st_mode & 0o170000 == 0o040000 and blob.startswith(PACKAGE_HEADER):
                    recorded, code = marshal.loads(memoryview(blob)[len(PACKAGE_HEADER) :])
                    if recorded == (path, stamp):
                        return code, entry
        except (OSError, EOFError, ValueError, TypeError):
            pass
    with open(path, "rb") as fp:
        return compile(fp.read(), path, "exec", dont_inherit=True), None


PACKAGE_CODE, PACKAGE_FROM = _package_code()
exec(PACKAGE_CODE, globals())  # noqa: S102 - our own file's code, as an import would run it

if TYPE_CHECKING:  # what _package.py defines here, for the type checker
    from ._package import (  # noqa: F401
        code_cache_dir,
        install,
        lazy,
        load,
        loader_module,
        read_private,
        spare_inherited_objects,
    )
