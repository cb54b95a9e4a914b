"""Our controller modules load with bytecode caching, not through Ansible's collection loader.

Ansible's loader compiles a collection's modules from source on every import;
``plugins/plugin_utils/__init__.py`` loads ours with the standard loader instead
(~60 ms less per ``ansible-playbook`` run, and per worker under built-in strategies).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = r"""
import importlib.machinery, importlib.util, json, sys
from ansible.plugins.loader import init_plugin_loader, strategy_loader, connection_loader
init_plugin_loader()
strategy_loader.get("ns.mitogen.linear", class_only=True)
connection_loader.get("ns.mitogen.ssh", class_only=True)
out = {}
for name in ("plugins.plugin_utils._mux_server", "plugins.plugin_utils._connection",
             "plugins.module_utils.mitogen._router", "plugins.module_utils.mitogen._stream"):
    mod = sys.modules["ansible_collections.ns.mitogen." + name]
    out[name] = {
        "standard_loader": isinstance(mod.__spec__.loader, importlib.machinery.SourceFileLoader),
        "file": mod.__file__,
        "cached": importlib.util.cache_from_source(mod.__file__),
    }
print(json.dumps(out))
"""


def _probe(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONDONTWRITEBYTECODE"}
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"),
        NS_MITOGEN_CODE_CACHE=str(tmp_path / "code-cache"),
        **env,
    )
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_controller_modules_are_loaded_by_the_standard_loader_and_cache_bytecode(tmp_path):
    found = _probe(tmp_path)
    for name, info in found.items():
        assert info["standard_loader"], name
        assert info["file"].startswith(os.path.join(ROOT, ".build", "collections")), info["file"]
        assert info["cached"].startswith(str(tmp_path / "pycache")), info["cached"]
        assert os.path.isfile(info["cached"]), "no bytecode cached for %s" % name


def test_no_bytecode_is_written_when_python_is_told_not_to(tmp_path):
    found = _probe(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    for name, info in found.items():
        assert info["standard_loader"], name
        assert not os.path.exists(info["cached"]), name


# -- what a worker under a built-in strategy loads, and the code cache (issue 20) ------

WORKER_PROBE = r"""
import builtins, json, sys
compiled = {}
real_compile = builtins.compile
def counting(*args, **kwargs):
    source = kwargs.get("source", args[0] if args else None)
    filename = str(kwargs.get("filename", args[1] if len(args) > 1 else ""))
    ours = "/plugins/plugin_utils/" in filename or "/module_utils/mitogen/" in filename
    # not counted: packages (Ansible's loader compiles them) and what reads the cache and bundle
    if isinstance(source, (str, bytes)) and ours and not filename.endswith(("/__init__.py", "/_loader.py", "/_bundle.py")):
        compiled[filename.rpartition("/plugins/")[2]] = len(source)
    return real_compile(*args, **kwargs)
builtins.compile = counting
import fnmatch
translated = []  # fnmatch patterns our code translated itself (to a regex: as costly as compiling)
real_translate = fnmatch.translate
def translate(pattern):
    if "/ns/mitogen/" in sys._getframe(1).f_code.co_filename:
        translated.append(pattern)
    return real_translate(pattern)
fnmatch.translate = translate
import os, re
regexes = []  # regexes our code compiled (a worker compiles each afresh: ~250 Python calls)
compiler = getattr(re, "_compiler", None) or __import__("sre_compile")
real_regex = compiler.compile
def compile_regex(pattern, *args, **kwargs):
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == os.path.dirname(re.__file__):
        frame = frame.f_back
    if frame is not None and "/ns/mitogen/" in frame.f_code.co_filename:
        regexes.append(str(pattern))
    return real_regex(pattern, *args, **kwargs)
compiler.compile = compile_regex
import importlib._bootstrap as bootstrap
through_import_system = []  # our modules the import system found and loaded
real_find_and_load = bootstrap._find_and_load
def find_and_load(name, import_):
    if name.startswith("ansible_collections.ns.mitogen.") and name not in sys.modules:
        through_import_system.append(name.rpartition(".")[2])
    return real_find_and_load(name, import_)
bootstrap._find_and_load = find_and_load
from ansible.plugins.loader import init_plugin_loader, strategy_loader, connection_loader
init_plugin_loader()
connection_loader.get("ns.mitogen.ssh", class_only=True)
if "task" in sys.argv:  # what TaskExecutor does with the connection of a task without become
    from ansible.playbook.play_context import PlayContext
    connection = connection_loader.get("ns.mitogen.ssh", PlayContext(), None)
    connection.set_become_plugin(None)
    connection.set_options(var_options={"ansible_host": "h", "ansible_python_interpreter": "/usr/bin/python3"})
    connection.update_vars({"hostvars": {"h": {}}, "inventory_hostname": "h"})
    connection._login_stack()
    connection.close()
ours = "ansible_collections.ns.mitogen.plugins."
worker = sorted(m[len(ours):] for m in sys.modules if m.startswith(ours))
connection = sys.modules[ours + "plugin_utils._connection"]
loader = type(connection.__spec__.loader).__name__
doc = sys.modules[ours + "plugin_utils._debug"].__doc__
doc_loader = type(sys.modules[ours + "plugin_utils._debug"].__spec__.loader).__name__
lazy = [p for p in sys.modules[ours + "plugin_utils._patterns"]._ALL if p._compiled is not None]
task_regexes = list(regexes)  # not what the strategy (below) compiles before forking its workers
if "strategy" in sys.argv:
    strategy_loader.get("ns.mitogen.linear", class_only=True)
print(json.dumps({"worker": worker, "compiled": compiled, "loader": loader, "doc": doc, "doc_loader": doc_loader,
                  "through_import_system": through_import_system,
                  "lazy_compiled": len(lazy), "translated": translated, "regexes": task_regexes,
                  "all": sorted(m[len(ours):] for m in sys.modules if m.startswith(ours))}))
"""

#: What only the multiplexer process or our strategies run: a worker that loads our
#: connection plugin under a built-in strategy must not import it.
SERVER_SIDE = (
    "plugin_utils._strategy",
    "plugin_utils._mux_server",
    "plugin_utils._mux_contexts",
    "plugin_utils._mux_fork",
    "plugin_utils._mux_hops",
    "plugin_utils._mux_modules",
    "plugin_utils._mux_sources",
    "plugin_utils._mux_relay",
    "plugin_utils._recycler",
    "plugin_utils._become_service",
    "plugin_utils._file_cache",
)


#: What a worker needs only for a command without an interpreter (``_oneshot``), or
#: never (the core's side of starting and serving contexts: ``api`` names them lazily).
NOT_FOR_A_MODULE = (
    "plugin_utils._oneshot",
    "module_utils.mitogen._bootstrap",
    "module_utils.mitogen._broker",
    "module_utils.mitogen._router",
    "module_utils.mitogen._importer",
    "module_utils.mitogen._modwire",
    "module_utils.mitogen._methods",
    "module_utils.mitogen._session",
    "module_utils.mitogen._service",
)


#: What a worker does not load for a task without become, ``mitogen_via`` or a file
#: transfer, whose module's facts are cached (``plugin_utils.lazy``, ``plugin_utils.load``).
NOT_FOR_A_COMMAND = (
    "plugin_utils._become",
    "plugin_utils._become_any",
    "plugin_utils._become_native",
    "plugin_utils._sudo_flags",
    "plugin_utils._via",
    "plugin_utils._names",
    "plugin_utils._failures",
    "plugin_utils._progress",
    "plugin_utils._transfer",
    "plugin_utils._original",
    "plugin_utils._roundtrips",
    "plugin_utils._tmpdirs",
    "module_utils.mitogen._modscan",
    "module_utils.mitogen._transports",
)


def _worker_probe(tmp_path, *args, collections=None, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NS_MITOGEN_"))}
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=collections or os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"),
        **env,
    )
    out = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE, *args], env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_worker_loading_the_connection_imports_no_server_side_module(tmp_path):
    found = _worker_probe(tmp_path, "strategy", "task")
    assert "plugin_utils._mux_client" in found["worker"]
    assert [m for m in SERVER_SIDE if m in found["worker"]] == []
    assert [m for m in NOT_FOR_A_MODULE if m in found["worker"]] == []
    assert [m for m in NOT_FOR_A_COMMAND if m in found["worker"]] == []
    assert "module_utils.mitogen.api" in found["worker"]  # the boundary, cheap to import
    assert found["lazy_compiled"] == 0  # a pattern a task may never use is compiled when used
    assert found["translated"] == []  # and its fnmatch patterns translated then (``_forking``)
    assert found["regexes"] == []  # a command task's worker compiles no regex of ours at all
    assert [m for m in SERVER_SIDE if m not in found["all"]] == []  # the strategy loads them all


def _modules(found):
    """The worker's modules of ours, but those that load the others (``_loader`` or ``_bundle``)."""
    return [m for m in found["worker"] if m not in ("plugin_utils._loader", "plugin_utils._bundle")]


def _cache_entries(cache):
    """The code cache's entries (one per source) and bundles, each sorted (not the package's code)."""
    (tag,) = os.listdir(cache)
    found = sorted(e for e in (cache / tag).iterdir() if not e.name.startswith("package-"))
    return [e for e in found if not e.name.startswith("bundle-")], [e for e in found if e.name.startswith("bundle-")]


def _package_entries(cache):
    """The entries of ``_package.py``'s code (``plugin_utils/__init__.py`` reads one)."""
    (tag,) = os.listdir(cache)
    return sorted(e for e in (cache / tag).iterdir() if e.name.startswith("package-"))


def test_code_cache_compiles_each_source_once_without_bytecode(tmp_path):
    cache = tmp_path / "code-cache"
    env = {"PYTHONDONTWRITEBYTECODE": "1", "NS_MITOGEN_CODE_CACHE": str(cache)}
    first = _worker_probe(tmp_path, **env)
    assert "plugin_utils/_connection.py" in first["compiled"]
    assert first["loader"] == "_CachingSourceLoader"
    assert first["compiled"].pop("plugin_utils/_package.py")  # by __init__.py: kept apart (below)
    entries, bundles = _cache_entries(cache)
    assert len(entries) == len(first["compiled"]) and len(bundles) == 1
    assert len(_package_entries(cache)) == 1
    assert (cache / entries[0].parent.name).stat().st_mode & 0o777 == 0o700
    assert all(e.stat().st_mode & 0o777 == 0o600 for e in entries + bundles + _package_entries(cache))
    assert not (tmp_path / "pycache").exists()  # nothing of Python's own bytecode
    second = _worker_probe(tmp_path, **env)
    assert second["compiled"] == {} and _modules(second) == _modules(first)
    assert (
        second["loader"] == "BundledLoader" and "plugin_utils._loader" not in second["worker"]
    )  # one read for all, not one per module
    # and run in the order they finished in when the bundle was made, each after what it
    # imports: none through the import system but the packages (``_bundle.run_first``)
    assert [m for m in first["through_import_system"] if m.startswith("_")]
    assert [m for m in second["through_import_system"] if m.startswith("_")] == []
    # a damaged bundle is ignored (each module from its own entry), then made again
    bundles[0].write_bytes(bundles[0].read_bytes()[:60] + b"garbage")
    third = _worker_probe(tmp_path, **env)
    assert (third["compiled"], third["loader"], _modules(third)) == ({}, "_CachingSourceLoader", _modules(first))
    assert _worker_probe(tmp_path, **env)["loader"] == "BundledLoader"
    # without a bundle, a damaged entry is compiled afresh (and replaced), never executed
    for bundle in _cache_entries(cache)[1]:
        bundle.unlink()
    entries[0].write_bytes(entries[0].read_bytes()[:40] + b"garbage")
    fourth = _worker_probe(tmp_path, **env)
    assert len(fourth["compiled"]) == 1 and _modules(fourth) == _modules(first)
    assert _worker_probe(tmp_path, **env)["compiled"] == {}


def test_bundle_never_serves_a_source_changed_since(tmp_path):
    """A source rewritten after its bundle was made (same size, same modification time)
    is loaded afresh (the unchanged ones still from the bundle); the bundle is made
    again once the sources settle."""
    collections = tmp_path / "collections"
    shutil.copytree(os.path.join(ROOT, ".build", "installed"), collections, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "code-cache"
    env = {"PYTHONDONTWRITEBYTECODE": "1", "NS_MITOGEN_CODE_CACHE": str(cache)}
    time.sleep(2.1)  # a bundle is not made from sources changed less than 2 s ago (the package docstring)
    _worker_probe(tmp_path, collections=str(collections), **env)
    assert len(_cache_entries(cache)[1]) == 1
    assert _worker_probe(tmp_path, collections=str(collections), **env)["loader"] == "BundledLoader"
    source = collections / "ansible_collections/ns/mitogen/plugins/plugin_utils/_debug.py"
    before = source.stat()
    text = source.read_text()
    assert "Per-process" in text.split('"""')[1]
    source.write_text(text.replace("Per-process", "PER-PROCESS", 1))  # same size
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same time: only ctime tells
    changed = _worker_probe(tmp_path, collections=str(collections), **env)
    assert changed["doc_loader"] == "_CachingSourceLoader" and changed["doc"].startswith("PER-PROCESS")
    assert changed["loader"] == "BundledLoader"  # each module's file is checked as it is imported


def test_package_code_comes_from_the_cache_only_while_valid(tmp_path):
    """``plugin_utils/__init__.py`` runs ``_package.py``'s code from its cache entry (Ansible
    compiles ``__init__.py`` in every worker: it is kept small); a damaged entry, one others
    may read, or one of a ``_package.py`` changed since (same size and modification time) is
    not used: the source is compiled, and the entry written again."""
    collections = tmp_path / "collections"
    shutil.copytree(os.path.join(ROOT, ".build", "installed"), collections, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "code-cache"
    env = {"PYTHONDONTWRITEBYTECODE": "1", "NS_MITOGEN_CODE_CACHE": str(cache)}
    source = collections / "ansible_collections/ns/mitogen/plugins/plugin_utils/_package.py"

    def compiles_package():
        found = _worker_probe(tmp_path, collections=str(collections), **env)
        return "plugin_utils/_package.py" in found["compiled"]

    time.sleep(2.1)  # no entry is written for a file changed less than 2 s ago
    assert compiles_package()
    (entry,) = _package_entries(cache)
    assert not compiles_package()
    good = entry.read_bytes()
    entry.write_bytes(good[:60] + b"garbage")
    assert compiles_package() and entry.read_bytes() == good  # damaged: compiled, written again
    entry.chmod(0o644)
    assert compiles_package()  # readable by others: not trusted, and replaced by a private one
    assert entry.stat().st_mode & 0o777 == 0o600 and not compiles_package()
    before = source.stat()
    text = source.read_text()
    source.write_text(text.replace("ns.mitogen's", "NS.MITOGEN's", 1))  # same size
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same time: only ctime tells
    assert compiles_package()  # changed: compiled from the new source
    time.sleep(2.1)
    compiles_package()  # (the run that writes the entry again, if the last one did not)
    assert not compiles_package() and len(_package_entries(cache)) == 1


def test_code_cache_off_or_unsafe_is_not_used(tmp_path):
    cache = tmp_path / "code-cache"
    env = {"PYTHONDONTWRITEBYTECODE": "1", "NS_MITOGEN_CODE_CACHE": "off"}
    assert "plugin_utils/_connection.py" in _worker_probe(tmp_path, **env)["compiled"]
    assert "plugin_utils/_connection.py" in _worker_probe(tmp_path, **env)["compiled"]
    tag = sys.implementation.cache_tag
    (cache / tag).mkdir(parents=True)
    (cache / tag).chmod(0o777)  # others could plant code there: not ours to trust
    env["NS_MITOGEN_CODE_CACHE"] = str(cache)
    assert "plugin_utils/_connection.py" in _worker_probe(tmp_path, **env)["compiled"]
    assert list((cache / tag).iterdir()) == []


DEFS_PROBE = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader, connection_loader
from ansible.playbook.play_context import PlayContext
from ansible import constants as C
init_plugin_loader()
conn = connection_loader.get("ns.mitogen.ssh", PlayContext(), None)
conn.set_options(var_options={"ansible_port": 2222})
defs = C.config.get_configuration_definitions("connection", conn._load_name)
print(json.dumps({
    "fragments_imported": "ansible_collections.ns.mitogen.plugins.doc_fragments.connection" in sys.modules,
    "shell_fragments_imported": "ansible.plugins.doc_fragments.shell_common" in sys.modules,
    "defs": json.loads(json.dumps(defs, sort_keys=True, default=str)),
    "shell_defs": json.loads(json.dumps(C.config.get_configuration_definitions("shell", "sh"), sort_keys=True, default=str)),
    "remote_tmp": conn._shell.get_option("remote_tmp"),
    "port": conn.get_option("port"),
    "host_key_checking": conn.get_option("host_key_checking"),
}))
"""


def test_option_definitions_are_parsed_once_then_cached(tmp_path):
    """A second process gets ns.mitogen.ssh's option definitions, and those of the ``sh``
    shell plugin its instance loads, from our cache: no YAML parse."""
    cache = tmp_path / "code-cache"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NS_MITOGEN_"))}
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        NS_MITOGEN_CODE_CACHE=str(cache),
    )

    def probe():
        out = subprocess.run(
            [sys.executable, "-c", DEFS_PROBE], env=environ, capture_output=True, text=True, timeout=120, check=False
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    parsed = probe()
    assert parsed["fragments_imported"] and parsed["shell_fragments_imported"]  # Ansible read the doc fragments: a real parse
    (tag,) = os.listdir(cache)
    entries = [e for e in (cache / tag).iterdir() if e.name.startswith("defs-")]
    assert len(entries) == 2  # ns.mitogen.ssh's and sh's
    assert {e.stat().st_mode & 0o777 for e in entries} == {0o600}
    cached = probe()
    assert not cached["fragments_imported"] and not cached["shell_fragments_imported"]
    assert cached == dict(parsed, fragments_imported=False, shell_fragments_imported=False)
    assert cached["remote_tmp"] == "~/.ansible/tmp"
    assert (cached["port"], cached["host_key_checking"]) == (2222, True)
    # an entry that is not the user's alone is not trusted: parsed again
    for entry in entries:
        entry.chmod(0o644)
    again = probe()
    assert again["fragments_imported"] and again["shell_fragments_imported"]


FACTS_PROBE = r"""
import builtins, json, sys
from ansible.plugins.loader import init_plugin_loader, connection_loader
init_plugin_loader()
connection_loader.get("ns.mitogen.ssh", class_only=True)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _planner
path = sys.argv[1]
opened = []
real_open = builtins.open
def recording(file, *args, **kwargs):
    opened.append(str(file))
    return real_open(file, *args, **kwargs)
builtins.open = recording
module = _planner._module_file(path)
builtins.open = real_open
source = _planner.source_for(module.source_id)
print(json.dumps({"read": opened.count(path), "facts": list(module.facts()), "source": (source or b"").decode()}))
"""


def test_module_facts_are_read_once_per_file_version(tmp_path):
    """A worker under a built-in strategy reads a module's facts from the cache, not its file;
    the source is still there when a target asks for it, and a changed file is read again."""
    module = tmp_path / "library" / "nsm_probe.py"
    module.parent.mkdir()
    module.write_text("from ansible.module_utils.basic import AnsibleModule\nAnsibleModule(argument_spec={}).exit_json()\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NS_MITOGEN_"))}
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        NS_MITOGEN_CODE_CACHE=str(tmp_path / "code-cache"),
    )

    def probe():
        out = subprocess.run(
            [sys.executable, "-c", FACTS_PROBE, str(module)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = probe()
    assert first["read"] == 1 and first["facts"][2] is True and first["facts"][3] == ["basic"]
    second = probe()
    assert second["read"] == 0 and second["facts"] == first["facts"]
    assert second["source"] == module.read_text()  # read on demand, checked against its digest
    module.write_text(module.read_text() + "# changed\n")
    third = probe()
    assert third["read"] == 1 and third["facts"][0] != first["facts"][0]
