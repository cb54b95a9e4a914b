# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding how a module runs, and preparing the smallest request for it (private).

Owns: ``plan()``, which finds the module a task runs, detects its style, and for a
new-style Python module builds a run request for the target's in-process runner
(``module_utils/mitogen/_runner.py``) instead of an AnsiballZ zip; and the marker
that stands for such a request on its way through ``ActionBase._execute_module`` to
the connection's ``exec_command`` (the request itself waits in the worker); and
``plan_program()``, which does the same for binary, WANT_JSON, JSON_ARGS and
old-style modules once Ansible's own ``_configure_module`` has prepared them (the
target runs them from memory: ``module_utils/mitogen/_programs.py``). Kept remote
files, and async tasks of other styles, get None: Ansible's own path runs, over
ns.mitogen's channel.
A module that imports a ``module_utils`` from a playbook's, role's or configured
``module_utils/`` directory runs in-process too: its request names those
directories (``module_utils_dirs``, in Ansible's search order) and the multiplexer
serves ``ansible.module_utils`` from them first, as Ansible would build the module.
Such a module_util stays cached in the target interpreter as every module_util
does: two directories of one run that give the same name different code are not
told apart (the first one a target imported wins).

Where the run goes on the target: an async task's module (``async: N``, started by
``_action``'s seam, which marks the action with ``ASYNC_ATTR``) becomes an async job
forked from the target's zygote (``"async": N`` in the request); a module that
``_forking`` says must fork runs in a fork of the zygote (``"fork": True``); every
other one runs in the interpreter itself.

The request crosses as data: ``{"name", "source_id", "args", "profile", "env"}``
where ``args`` is the JSON text Ansible's own encoder made, plus ``source_path``
for the multiplexer, which attaches the module's source to the first run of it
each interpreter gets (and drops the path); should the target still lack it
(``need_source``), the worker sends its own copy. So a module crosses once per run
and interpreter, with no round trip of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import marshal
import os
import shlex
import stat
from typing import Any, Dict, List, Optional, Set, Tuple

import ansible.constants as C

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _forking, _patterns

MARKER = b"#!ns.mitogen run-module\n"
ASYNC_ATTR = "_ns_mitogen_async"  # set on an action while its async module is being started
_SOURCES: Dict[str, bytes] = {}  # source_id -> source, for need_source replies
_SOURCE_PATHS: Dict[str, str] = {}  # source_id -> its file, where facts came from the cache (source unread)
_FACTS_HEADER = b"nsm-facts-1\n"
_FILES: Dict[str, "_ModuleFile"] = {}  # module path -> what plan() needs of it
_WARMED: Set[Tuple[str, Tuple[str, ...]]] = set()  # (module name, collections) read by warm_module
_AHEAD_PATHS: Dict[Tuple[str, Tuple[str, ...]], Optional[str]] = {}  # (module name, collections) -> its file
_PENDING: Dict[bytes, Dict[str, Any]] = {}  # marker token -> its request (this process)
_TOKENS = itertools.count(1)
#: Modules that the file actions (copy, template, fetch, ...) run besides the task's own.
WARM_MODULES = ("ansible.legacy.stat", "ansible.legacy.file", "ansible.legacy.copy", "ansible.legacy.slurp")
_CUSTOM_DIRS: Dict[Tuple[str, ...], List[str]] = {}  # module_utils search path -> its custom directories


class Plan:
    """A module run prepared for the in-process runner."""

    def __init__(self, request: Dict[str, Any], module_path: str) -> None:
        self.request = request
        self.module_path = module_path

    def __repr__(self) -> str:
        return "Plan(%s)" % self.request.get("name")

    def marker(self) -> bytes:
        """What stands in for the module's payload until ``exec_command`` (same process).

        The request stays here, under a token: it is not encoded into the payload and
        decoded again a moment later in the same worker.
        """
        token = b"%d.%d" % (os.getpid(), next(_TOKENS))
        _PENDING[token] = self.request
        return MARKER + token


def decode_marker(in_data: Optional[bytes]) -> Optional[Dict[str, Any]]:
    """The request ``in_data`` stands for, or None when it is not ours.

    Raises ``KeyError`` for a marker this process did not make, or already ran
    (nothing hands one on; it would be a bug, and running it as a command's input
    would be worse).
    """
    if not in_data or not in_data.startswith(MARKER):
        return None
    return _PENDING.pop(bytes(in_data[len(MARKER) :]))


def source_for(source_id: str) -> Optional[bytes]:
    """The source ``source_id`` names (read now if its facts came from the cache), or None."""
    found = _SOURCES.get(source_id)
    path = _SOURCE_PATHS.get(source_id)
    if found is None and path is not None:
        try:
            with open(path, "rb") as fp:
                source = fp.read()
        except OSError:
            return None
        if hashlib.sha1(source).hexdigest() == source_id:  # else changed since: not the source planned
            found = _SOURCES[source_id] = source
    return found


class _ModuleFile:
    """What ``plan()`` needs of a module file, read once per file version.

    ``facts``: those facts as ``facts()`` gave them (from the cache), instead of ``source``.
    """

    def __init__(self, path: str, version: Tuple[int, int, int], source: bytes = b"", facts: Any = None) -> None:
        self.version = version
        if facts is not None:
            self.source_id, self.json_args, self.new_style, utils, self.profile, self.name = facts
            self.module_utils = set(utils)
            if self.new_style:  # as below: only sources the runner can use are served
                _SOURCE_PATHS[self.source_id] = path
            return
        self.source_id = hashlib.sha1(source).hexdigest()
        self.json_args = _compat.is_json_args(source)
        self.new_style = _is_new_style_python(path, source)
        self.module_utils = _imported_module_utils(source) if self.new_style else set()
        self.profile = _compat.module_profile(source) if self.new_style else None
        self.name = _compat.module_fqn(path, _without_py(os.path.basename(path)))
        if self.new_style:
            _SOURCES[self.source_id] = source

    def facts(self) -> Tuple[Any, ...]:
        """Plain values (``marshal``) from which ``_ModuleFile(path, version, facts=...)`` is made again."""
        return (self.source_id, self.json_args, self.new_style, sorted(self.module_utils), self.profile, self.name)


def _without_py(name: str) -> str:
    return name[:-3] if name.endswith(".py") else name


def _module_file(path: str) -> _ModuleFile:
    """``path``'s facts, from the cache while the file is unchanged (size, mtime, inode).

    The cache is filled in the main process too (``warm_module``), before workers
    fork: a worker then reads, hashes and scans nothing for a module it runs. Under a
    built-in strategy nothing is read before a worker forks, so the facts are kept in
    the private code cache too (``_facts_entry``): a worker then reads one small entry,
    not the module's file (~1 ms less a task).
    """
    st = os.stat(path)
    version = (st.st_mtime_ns, st.st_size, st.st_ino)
    found = _FILES.get(path)
    if found is None or found.version != version:
        entry = _facts_entry(path, version)
        facts = _read_facts(entry) if entry else None
        if facts is not None:
            found = _FILES[path] = _ModuleFile(path, version, facts=facts)
            return found
        with open(path, "rb") as fp:
            source = fp.read()
        found = _FILES[path] = _ModuleFile(path, version, source)
        if entry:
            _write_facts(entry, found.facts())
    return found


def _facts_entry(path: str, version: Tuple[int, int, int]) -> Optional[str]:
    """The cache entry of ``path``'s facts as of ``version``, or None (no cache).

    Found by what the facts depend on: the file's path and version (as ``_FILES``),
    ansible-core's version (the profile and style rules) and this module's and
    ``_compat``'s files (``plugin_utils.stamp``: the code that works them out).
    """
    directory = plugin_utils.code_cache_dir()
    if directory is None:
        return None
    from ansible.release import __version__

    key = repr((path, version, __version__, plugin_utils.stamp(__file__), plugin_utils.stamp(_compat.__file__)))
    return os.path.join(directory, "facts-" + hashlib.sha256(_FACTS_HEADER + key.encode()).hexdigest())


def _read_facts(entry: str) -> Any:
    blob = plugin_utils.read_private(entry)
    if blob is None or not blob.startswith(_FACTS_HEADER):
        return None
    try:
        facts = marshal.loads(blob[len(_FACTS_HEADER) :])
    except (EOFError, ValueError, TypeError):
        return None
    return facts if isinstance(facts, tuple) and len(facts) == 6 else None


def _write_facts(entry: str, facts: Tuple[Any, ...]) -> None:
    plugin_utils.loader_module().write_private(os.path.dirname(entry), entry, _FACTS_HEADER + marshal.dumps(facts))


def warm_up() -> None:
    """Fill Ansible's own module path cache in the main process, before workers fork.

    A legacy name (``ansible.legacy.command``, the name action plugins use) is found
    by listing each module directory and caching every file in it; each forked
    worker would do that again for its one lookup (~80 stat calls). A lookup of a
    name nobody has lists them all, once; workers inherit the cache. The same for
    the module_utils search path, which ``plan()`` reads for every module (the
    loader globs for it), for the modules that file actions run (``WARM_MODULES``),
    and for the code that encodes a module's arguments (its first run in a process
    imports and builds what it needs). Directories added later (a role's
    ``library/`` or ``module_utils/``) clear these caches, as Ansible does.
    """
    from ansible.plugins.loader import module_loader

    module_loader.find_plugin_with_context("ansible.legacy.__ns_mitogen_warm_up__", "", collection_list=None)
    _custom_module_utils_dirs()
    for name in WARM_MODULES:
        warm_module(name, None)
    for profile in {module.profile for module in _FILES.values() if module.new_style}:
        _compat.module_args_json({}, profile)


def warm_module(name: str, collections: Optional[List[str]]) -> None:
    """Read module ``name``'s file into the cache now (main process, before a worker forks).

    Once per name: this is a hint, as the worker finds its module itself and uses
    the cache only for that file as it is now. Quietly: a deprecated name is
    reported by the worker that runs it, as ever.
    """
    key = (name, tuple(collections or ()))
    if key in _WARMED:
        return
    _WARMED.add(key)
    path = _resolve(name, collections, quiet=True)
    if path is not None:
        try:
            _module_file(path)
        except OSError:
            pass  # plan() meets it again, and Ansible reports it


def ahead_facts(name: str, collections: Optional[List[str]]) -> Optional[Tuple[str, str, str]]:
    """``(path, source_id, import name)`` of module ``name`` if the in-process runner would run it; else None.

    For the strategy, which has the mux send a host's next module ahead (main
    process; the file's facts are cached as ``warm_module``'s, so the worker that
    runs the module reads nothing either).
    """
    if C.DEFAULT_KEEP_REMOTE_FILES:
        return None
    key = (name, tuple(collections or ()))
    if key not in _AHEAD_PATHS:
        _AHEAD_PATHS[key] = _resolve(name, collections, quiet=True)
    path = _AHEAD_PATHS[key]
    if path is None:
        return None
    try:
        module = _module_file(path)
    except OSError:
        return None
    return (path, module.source_id, module.name) if module.new_style else None


def _resolve(module_name: str, collections: Optional[List[str]], loader: Any = None, quiet: bool = False) -> Optional[str]:
    if loader is None:
        from ansible.plugins.loader import module_loader

        loader = module_loader
    result = loader.find_plugin_with_context(module_name, "", ignore_deprecated=quiet, collection_list=collections)
    path = getattr(result, "plugin_resolved_path", None) if getattr(result, "resolved", False) else None
    return str(path) if path else None


def _find_module(action: Any, module_name: str) -> Optional[str]:
    return _resolve(module_name, action._task.collections, action._shared_loader_obj.module_loader)


def _is_new_style_python(path: str, source: bytes) -> bool:
    if not path.endswith(".py") or b"\x00" in source[:1024]:
        return False
    return _compat.is_new_style_python(source)


def _custom_module_utils_dirs() -> List[str]:
    """Directories of non-builtin ``ansible.module_utils`` (playbook, role, configured).

    Worked out once per search path (a role adding its ``module_utils/`` makes a new
    one), in the main process by ``warm_up()``: workers inherit it.
    """
    paths = tuple(_compat.module_utils_paths())
    found = _CUSTOM_DIRS.get(paths)
    if found is None:
        # the builtin one told by its inode, not by realpath() (a few dozen calls a path,
        # in every worker under a built-in strategy): a directory has one
        builtin = os.stat(_compat.builtin_module_utils_dir())
        found = _CUSTOM_DIRS[paths] = [p for p in paths if _other_directory(p, builtin)]
    return found


def _other_directory(path: str, other: os.stat_result) -> bool:
    """True if ``path`` is a directory, and not ``other`` (its ``os.stat``)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not os.path.samestat(st, other)


def _imported_module_utils(source: bytes) -> Set[str]:
    """First names below ``ansible.module_utils`` that ``source`` imports anywhere."""
    names: Set[str] = set()
    for name in api.imported_names("ansible.legacy.module", False, source):  # the scanner loads only here
        parts = name.split(".")
        if parts[:2] == ["ansible", "module_utils"] and len(parts) > 2:
            names.add(parts[2])
    return names


def _provided_by_custom_dirs(names: Set[str]) -> bool:
    """True if a custom directory provides one of the module_utils ``names`` (a module's imports).

    Such a directory may also shadow a builtin name: the multiplexer then serves the
    directory's, as Ansible searches these directories first.
    """
    dirs = _custom_module_utils_dirs() if names else []
    return any(
        os.path.exists(os.path.join(d, name + ".py")) or os.path.isdir(os.path.join(d, name)) for name in names for d in dirs
    )


def in_process(action: Any, module_name: str) -> Optional[Tuple[str, _ModuleFile]]:
    """``module_name``'s path and facts if the in-process runner can run it; else None."""
    if C.DEFAULT_KEEP_REMOTE_FILES:
        return None
    path = _find_module(action, module_name)
    if path is None:
        return None  # let Ansible raise its own "module not found"
    module = _module_file(path)
    if not module.new_style:
        return None
    return path, module


def plan(action: Any, module_name: str, module_args: Dict[str, Any], warn: Any = None) -> Optional[Plan]:
    """A run request for ``module_name``, or None if Ansible's own path must run it.

    ``warn``: called once with the words for a ``mitogen_task_isolation`` value this
    does not take.
    """
    found = in_process(action, module_name)
    if found is None:
        return None
    path, module = found
    dirs = _custom_module_utils_dirs() if _provided_by_custom_dirs(module.module_utils) else None
    env = _compat.task_environment(action)
    request: Dict[str, Any] = {
        "name": module.name,
        "source_id": module.source_id,
        "args": _compat.module_args_json(module_args, module.profile),
        "profile": module.profile,
        "env": {str(k): str(v) for k, v in env.items()},
        "source_path": path,  # for the mux, which attaches the source where it was never sent
    }
    limit = getattr(action, ASYNC_ATTR, None)
    if limit:
        request["async"] = int(limit)
        # the job behaves as this release's async_wrapper: its version, and how it times a job out
        request["async_wrapper"] = list(_compat.VERSION) + [int(_compat.async_wrapper_halves_step())]
    elif _forking.fork_reason(action._connection, module.name, warn or (lambda _msg: None)):
        request["fork"] = True
    if dirs:
        request["module_utils_dirs"] = list(dirs)  # for the mux, which serves ansible.module_utils from them first
    return Plan(request, path)


def may_run_program(action: Any) -> bool:
    """False where only Ansible's own path may run a module that ``plan()`` left (async, kept files)."""
    return not (action._task.async_val or C.DEFAULT_KEEP_REMOTE_FILES)


_SAFE_NAME = _patterns.LazyPattern(r"[^A-Za-z0-9_.]")


def _args_file_text(style: str, module_args: Dict[str, Any], profile: Optional[str]) -> str:
    if style == "old":  # as ActionBase._execute_module writes it
        return "".join("%s=%s " % (k, shlex.quote(str(v))) for k, v in module_args.items())
    return _compat.args_file_json(module_args, profile)


def plan_program(action: Any, module_name: str, module_args: Dict[str, Any], configured: Any) -> Optional[Plan]:
    """A run request for a binary, WANT_JSON, JSON_ARGS or old-style module, or None.

    ``configured``: what Ansible's own ``_configure_module`` made of the module (the
    shebang rewritten by the ``ansible_<x>_interpreter`` rules, JSON_ARGS
    substituted). The target runs it from memory (``module_utils/mitogen/_programs``)
    as vanilla's shell would run its temp files. The program crosses as the module
    file does when Ansible left it as it was (once per interpreter: the mux attaches
    it), else in the request. None for everything else (AnsiballZ, PowerShell).
    """
    style, shebang, data, profile, path = _compat.configured_parts(configured)
    module = _module_file(path)
    if style == "binary":
        kind, argv, args_file = "binary", [], True
    elif style in ("old", "non_native_want_json") or (
        style == "new" and not module.new_style and not path.endswith(".ps1") and module.json_args
    ):
        try:
            argv = shlex.split((shebang or "").replace("#!", "", 1).strip())
        except ValueError:
            return None
        if not argv:
            return None
        kind, args_file = "script", style != "new"
    else:
        return None
    data = bytes(data)
    source_id = hashlib.sha1(data).hexdigest()
    _SOURCES[source_id] = data
    request: Dict[str, Any] = {
        "name": _SAFE_NAME.sub("_", module_name) or "module",
        "source_id": source_id,
        "args": _args_file_text(style, module_args, profile) if args_file else "",
        "args_file": args_file,
        "profile": profile,
        "env": {str(k): str(v) for k, v in _compat.task_environment(action).items()},
        "style": kind,
        "argv": argv,
        "tmp": _compat.remote_tmp(action),
    }
    if source_id == module.source_id:
        request["source_path"] = path  # unchanged: the mux attaches the file where never sent
    else:
        request["source"] = data
    return Plan(request, path)
