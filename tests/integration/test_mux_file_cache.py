"""The multiplexer keeps what it derives from files across runs (``plugin_utils._file_cache``).

Each probe is a fresh process that starts a ``Session`` as the mux does (with the
mux's cache), boots a real local interpreter from the boot payload, has it import a
core module the responder serves (lowered) and warms the first module run's
module_utils. It counts the calls to the parser and to the code that derives
(``_lower.lower_source``, ``_modscan.imported_names``, ``ast.parse``) and the
compressions of large data (the payload, the first module run's module_utils), and
prints digests of the payload and of what the responder serves and sends (the
sources, the compressed bundle): the same bytes whether they came from the cache or
not.

The last test starts real muxes (``_mux_server.start``) and reads their cache's
counters (``stats``): the second finds everything the first made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux_client, _mux_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = r"""
import ast, hashlib, json, sys, zlib
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _lower, _modscan
calls = {"lower": 0, "scan": 0, "parse": 0, "compress": 0}
def counted(what, real, least=0):
    def call(*args, **kwargs):
        if least == 0 or len(args[0]) >= least:
            calls[what] += 1
        return real(*args, **kwargs)
    return call
zlib.compress = counted("compress", zlib.compress, 16384)  # the payload, a first run's module_utils
_lower.lower_source = counted("lower", _lower.lower_source)
_modscan.imported_names = counted("scan", _modscan.imported_names)
ast.parse = counted("parse", ast.parse)
from ansible_collections.ns.mitogen.plugins.plugin_utils._file_cache import FileCache
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux import FIRST_RUN_MODULES, MODULE_TREES
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _bootstrap, api
CORE = api.CORE_PACKAGE
cache = FileCache.open()
with api.Session(allow_imports=MODULE_TREES + ["tests.integration.remote_helpers"], cache=cache) as session:
    ctx = session.local()
    from tests.integration import remote_helpers as rh
    served = ctx.call(rh.import_module, CORE + "._files")
    session.responder.warm(FIRST_RUN_MODULES)
    bundle = session.responder.bundle_for(-1, FIRST_RUN_MODULES + [CORE + "._files"])
    data = _bootstrap.payload().data
    packed = session.responder.pack(bundle)
print(json.dumps({
    "calls": calls,
    "served": served,
    "payload": hashlib.sha256(data).hexdigest(),
    "payload_has": sys.argv[3].encode() in zlib.decompress(data),
    "sources": hashlib.sha256(repr(sorted(bundle.items())).encode()).hexdigest(),
    "packed": hashlib.sha256(packed).hexdigest(),
    "files_has": sys.argv[3].encode() in (bundle[CORE + "._files"][2] or b""),
    "cache": None if cache is None else [cache.hits, cache.misses, cache.writes],
}))
"""


def _probe(cache, collections=None, marker="nothing-such"):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NS_MITOGEN_"))}
    environ["NS_MITOGEN_CODE_CACHE"] = str(cache)
    collections = str(collections or os.path.join(ROOT, ".build", "collections"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, collections, ROOT, marker],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(cache):
    (tag,) = os.listdir(cache)
    return sorted(e for e in (cache / tag).iterdir() if e.name.startswith("derived-"))


def _made_here(collections):
    """A copy of the built collection whose files are settled (entries are not written
    from files changed less than 2 s ago)."""
    shutil.copytree(os.path.join(ROOT, ".build", "installed"), collections, ignore=shutil.ignore_patterns("__pycache__"))
    time.sleep(2.1)


def test_a_second_start_takes_the_payload_and_the_sources_from_the_cache(tmp_path):
    cache = tmp_path / "code-cache"
    first = _probe(cache)
    assert first["calls"]["lower"] > 20 and first["calls"]["scan"] > 50, first
    assert first["served"] == "ansible_collections.ns.mitogen.plugins.module_utils.mitogen._files"
    entries = _entries(cache)
    assert first["cache"][2] == len(entries) > 50  # the payload, each lowered and each scanned source
    assert {e.stat().st_mode & 0o777 for e in entries} == {0o600}
    second = _probe(cache)
    assert first["calls"]["compress"] >= 2  # the payload, the bundle (and the import's reply)
    assert second["calls"] == {"lower": 0, "scan": 0, "parse": 0, "compress": 0}, (
        second
    )  # nothing parsed, lowered, scanned or compressed
    assert second["cache"][1:] == [0, 0]  # every lookup a hit, nothing written
    for what in ("payload", "sources", "packed", "served"):
        assert second[what] == first[what], what


def test_a_damaged_entry_is_ignored_and_made_again(tmp_path):
    cache = tmp_path / "code-cache"
    first = _probe(cache)
    entries = _entries(cache)
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:40] + b"garbage")
    damaged = _probe(cache)
    assert damaged["calls"]["lower"] == first["calls"]["lower"] and damaged["calls"]["scan"] == first["calls"]["scan"]
    assert damaged["calls"]["compress"] == first["calls"]["compress"]
    assert (damaged["payload"], damaged["sources"], damaged["packed"]) == (first["payload"], first["sources"], first["packed"])
    assert _probe(cache)["calls"] == {"lower": 0, "scan": 0, "parse": 0, "compress": 0}  # made again, then used


def test_an_entry_that_is_not_the_users_alone_is_ignored(tmp_path):
    cache = tmp_path / "code-cache"
    first = _probe(cache)
    for entry in _entries(cache):
        entry.chmod(0o644)
    again = _probe(cache)
    assert again["calls"]["lower"] == first["calls"]["lower"] and again["payload"] == first["payload"]


def test_a_core_file_changed_with_the_same_size_and_times_is_seen(tmp_path):
    """The payload's entry records each file it was made from: a rewrite with the same
    size and modification time (only the change time tells) makes it stale."""
    collections = tmp_path / "collections"
    _made_here(collections)
    cache = tmp_path / "code-cache"
    core = collections / "ansible_collections/ns/mitogen/plugins/module_utils/mitogen"
    assert not _probe(cache, collections)["payload_has"]
    assert _probe(cache, collections)["calls"]["lower"] == 0  # cached
    for name, old, new in (
        ("_state.py", "ContextState(router=", "ContextSTATE(router="),  # in the payload
        ("_files.py", "File streaming in both", "FILE STREAMING in both"),  # served on demand (docstring kept)
    ):
        path = core / name
        before = path.stat()
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))  # same size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same times
        assert path.stat().st_size == before.st_size
    changed = _probe(cache, collections, marker="ContextSTATE(router=")
    assert changed["payload_has"] and changed["calls"]["lower"] > 0, changed  # made again
    assert _probe(cache, collections, marker="FILE STREAMING in both")["files_has"]


def test_code_cache_off_keeps_nothing(tmp_path):
    first = _probe("off")
    second = _probe("off")
    assert first["cache"] is None and second["calls"]["lower"] == first["calls"]["lower"] > 20
    assert second["calls"]["compress"] == first["calls"]["compress"] >= 2
    assert (second["payload"], second["sources"], second["packed"]) == (first["payload"], first["sources"], first["packed"])
    assert not (tmp_path / "off").exists()


def _mux_cache_counts(playbook, index):
    """A fresh mux (``index``: another process for the same playbook) after it started a
    local interpreter and prepared the first module run: its cache's hits, misses, writes."""
    path = _mux_server.start(playbook.pid, [], index=index)
    client = _mux_client.MuxClient(path)
    try:
        client.request("connect", stack=[{"method": "local", "python": sys.executable}])
        seen, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline:  # the prepare thread looks each source up, then is done
            kept = client.request("stats")["file_cache"]
            if kept is not None and kept == seen and kept["hits"] + kept["misses"] > 50:
                return kept
            seen = kept
            time.sleep(0.5)
        raise AssertionError("the mux's cache lookups did not settle: %r" % (seen,))
    finally:
        client.close()


def test_the_mux_keeps_its_payload_and_sources_across_runs(playbook, tmp_path, monkeypatch):
    monkeypatch.setenv("NS_MITOGEN_CODE_CACHE", str(tmp_path / "code-cache"))
    first = _mux_cache_counts(playbook, 0)
    assert first["misses"] > 50 and first["writes"] == first["misses"], first
    second = _mux_cache_counts(playbook, 1)
    assert second["misses"] == 0 and second["writes"] == 0 and second["hits"] >= first["misses"], second
