# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our connection plugins' option definitions, parsed once per user, not once per worker (private).

Ansible's plugin loader, after importing a plugin, parses its ``DOCUMENTATION`` and doc
fragments (YAML) into option definitions for ``get_option()`` - unless the config
manager has definitions under that plugin's name already. Under a built-in strategy
every worker loads our connection plugin afresh, and that parse was the largest part
of what remained of its own work (~17 ms of CPU for ``ns.mitogen.ssh``).

So, when a plugin module runs (``preload()``, at its end, before the loader looks), the
definitions Ansible made in an earlier process are registered from the private cache
of ``plugin_utils.code_cache_dir()``; on a miss, the first connection object stores what
Ansible parsed (``remember()``). Only the config manager's public methods are used.
The same goes for ansible-core's ``sh`` shell plugin, which each connection instance
loads and whose documentation Ansible parsed in every worker too (~4 ms).

An entry is found by the SHA-256 of its format, the ansible-core version, the Python's cache tag,
the plugin file's path and text, and the text of our doc fragments: what Ansible's
result depends on. The definitions hold no values from the configuration (those are
resolved by ``get_option()`` as ever). The entry is written and read under the same
rules as the code cache (a 0700 directory of the user's, entries of the user's and
readable by nobody else, written to a temporary file and renamed). Anything unexpected
leaves Ansible to parse the documentation itself.

An entry holds the definitions as plain values (``marshal``: dicts, lists, strings,
numbers), without the data tags ansible-core 2.19+ puts on what its YAML loader
reads (origins, as tagged ``str``/``int`` objects): unpickling those cost ~5 ms per
worker, the plain values ~0.1 ms, and ``marshal`` runs no code while loading, as
``pickle`` may.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from typing import Any, Callable, Dict, Optional, Tuple

_MISSED: Dict[str, Tuple[str, str]] = {}  # plugin file (or "sh") -> (its type, the entry to store once parsed)
_SHELL = "sh"  # ansible-core's shell plugin of every POSIX connection by default
_HEADER = b"nsm-defs-2\n"  # -2: marshal of plain values (was a pickle)


def _entry(*parts: bytes) -> Optional[str]:
    """The cache entry for what ``parts`` (the inputs of Ansible's parse) say, or None."""
    from ansible.release import __version__

    from ansible_collections.ns.mitogen.plugins import plugin_utils

    directory = plugin_utils.code_cache_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(  # the header too: an entry of another format is another entry
        b"%s%s\0%s" % (_HEADER, __version__.encode(), str(sys.implementation.cache_tag).encode())
    )
    for part in parts:
        digest.update(b"\0%d\0%s" % (len(part), part))
    return os.path.join(directory, "defs-" + digest.hexdigest())


def _our_entry(path: str, documentation: str) -> Optional[str]:
    """Our plugin's: its path, its documentation, and the text of our doc fragments."""
    parts = [os.fsencode(path), documentation.encode("utf-8", "surrogateescape")]
    fragments = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "doc_fragments")
    for name in sorted(os.listdir(fragments)):
        if name.endswith(".py"):
            with open(os.path.join(fragments, name), "rb") as fp:
                parts += [name.encode(), fp.read()]
    return _entry(*parts)


def _shell_entry() -> Optional[str]:
    """ansible-core's ``sh`` plugin's: its path and text, and the size and time of each
    of ansible-core's doc fragments (``shell_common`` among them: a file changed in
    place, as by a patch, is another entry)."""
    import ansible.plugins.shell
    from ansible.plugins.loader import shell_loader

    path = os.path.join(os.path.dirname(os.path.abspath(ansible.plugins.shell.__file__)), _SHELL + ".py")
    found = shell_loader.find_plugin(_SHELL)  # should "sh" resolve to another file, Ansible parses that one
    if not found or (found != path and os.path.realpath(found) != os.path.realpath(path)):
        return None
    with open(path, "rb") as fp:
        parts = [os.fsencode(path), fp.read()]
    fragments = os.path.join(os.path.dirname(os.path.dirname(path)), "doc_fragments")
    for item in sorted(os.scandir(fragments), key=lambda e: e.name):
        st = item.stat()
        parts.append(b"%s\0%d\0%d" % (item.name.encode(), st.st_size, st.st_mtime_ns))
    return _entry(*parts)


def preload(plugin_type: str, path: str, documentation: str) -> None:
    """Register the option definitions of the plugin in ``path`` from the cache, if there.

    A connection plugin's instance loads its shell plugin (``sh`` unless the host's
    ``ansible_shell_type`` says otherwise), whose documentation Ansible parses too, in
    every worker: its definitions are registered from the cache as well.
    """
    _register(plugin_type, path, lambda: _our_entry(path, documentation))
    if plugin_type == "connection":
        _register("shell", _SHELL, _shell_entry)


def _register(plugin_type: str, key: str, entry_of: Callable[[], Optional[str]]) -> None:
    try:
        import ansible.constants as C

        entry = entry_of()
        if entry is None:
            return
        found = _read(entry)
        if found is None:
            _MISSED[key] = (plugin_type, entry)
            return
        name, defs = found
        if not C.config.has_configuration_definition(plugin_type, name):
            C.config.initialize_plugin_configuration_definitions(plugin_type, name, defs)
    except Exception:  # an optimisation: Ansible parses the documentation itself
        pass


def remember(plugin: Any) -> None:
    """After a miss: store the definitions Ansible parsed for ``plugin`` (a connection
    plugin object) and for the ``sh`` shell plugin it loaded."""
    # the plugin's file, as Ansible loaded it (its class may live in another module: ``_ssh``)
    path = getattr(plugin, "_original_path", None) or getattr(sys.modules.get(type(plugin).__module__), "__file__", None)
    _store(path, lambda: plugin._load_name)
    if getattr(getattr(plugin, "_shell", None), "_load_name", None) == _SHELL:
        _store(_SHELL, lambda: _SHELL)


def _store(key: Optional[str], name_of: Callable[[], str]) -> None:
    missed = _MISSED.pop(key, None) if key else None
    if missed is None or os.path.exists(missed[1]):  # (workers forked after a miss in their parent)
        return
    plugin_type, entry = missed
    try:
        import ansible.constants as C

        name = name_of()
        defs = C.config.get_configuration_definitions(plugin_type, name)
        if defs:
            _write(entry, name, plain(defs))
    except Exception:  # the next worker parses again
        pass


def plain(value: Any) -> Any:
    """``value`` (option definitions) as plain dicts, lists, ``str``, ``int``, ``float``.

    ansible-core's YAML loader returns ``str``/``int`` subclasses carrying tags
    (2.19+) or positions (``AnsibleUnicode``, older); ``str.__str__`` and ``int()`` of
    one are exact copies. Raises ``TypeError`` for anything else (nothing is cached).
    """
    if value is None or type(value) in (bool, str, int, float):
        return value
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError("not a plain value: %r" % type(value))


def _read(entry: str) -> Optional[Any]:
    from ansible_collections.ns.mitogen.plugins import plugin_utils

    blob = plugin_utils.read_private(entry)
    if blob is None:
        return None
    head = _HEADER + os.path.basename(entry).encode() + b"\n"
    if not blob.startswith(head):
        return None
    name, defs = marshal.loads(blob[len(head) :])
    return (name, defs) if isinstance(name, str) and isinstance(defs, dict) else None


def _write(entry: str, name: str, defs: Dict[str, Any]) -> None:
    import tempfile

    blob = _HEADER + os.path.basename(entry).encode() + b"\n" + marshal.dumps((name, defs))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(entry), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(blob)
        os.replace(tmp, entry)
    except OSError:
        os.unlink(tmp)
