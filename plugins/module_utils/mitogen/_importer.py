# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Modules served on demand from the controller, cached at every hop (private).

Owns: ``Importer`` (a ``sys.meta_path`` finder in every non-root context) and
``Responder`` (answers ``GET_MODULE`` from direct children, in every context).

Rules it keeps (the allow-list decisions are ``_allowlist.ImportPolicy``'s, pure):
- Only module trees on the allow-list (``prefixes``) are ever served, and on the
  controller their source is read from the controller's own files. A request for
  anything else is refused and counted; no other module of the controller leaks.
- A module is answered together with the allowed modules it imports (transitively),
  minus those that child already has, so one round trip serves a whole tree. Names
  it imports that are not modules here travel as absent (the child would ask for
  each otherwise), and ``companions`` (set by whoever knows, e.g. the mux: what the
  module runner imports by computed names) go with a module the first time.
- A child never receives again what its boot payload held (``started_with``): the
  core modules it runs on are in every bundle's closure (the runner imports them).
- An ancestor package of an allowed tree is served empty (never its source), unless
  whoever starts the responder gave its text (``provide``): ``ansible`` gets the
  stub AnsiballZ writes into each module's zip (``__version__``, ``__author__``).
- Every hop keeps what passed through it: an intermediary answers its children
  from its cache, and asks upwards only for what it lacks. So each module crosses
  each hop at most once per run (``Responder.sent`` counts it, for the tests). What
  the parent sent along with a module (its companions) goes along with it to each
  child too (``Importer.arrived_with``): a target behind an intermediary asks as
  few times as one that is not.
- A parent may also send a bundle before anyone asks (``LOAD_MODULES``, one way,
  from the parent only): the closure of a module a run is about to need, ahead
  of that run on the same route (so stored before the run starts). The
  controller makes it with ``Responder.bundle_for``, the same closure a request
  gets, minus what that child was sent. ``Responder.asked`` counts the requests
  each child made (each one a round trip on its link), for the tests and the
  round-trip report.
- The core's own modules are served lowered for every supported target Python
  (``_lower``: no annotations; lines where they are in the file).
- Allow-listed trees are looked up here *before* the target's own ``sys.path``, so
  the controller's version of those trees always wins.
- What a module imports is found by a line scan (``_modscan.imported_names``), not by
  parsing it: parsing ``basic``'s closure (~50 modules, 400 KB) cost ~300 ms of
  the first task. The scan errs on the side of more names (an import inside a
  string is harmless: a name that is not a module is skipped).
- What is derived from a source alone (a core module lowered, what a module
  imports, its compiled code) may be kept across processes in ``Responder.cache``
  (``_derived``): the same bytes are served either way.
- A child that runs the bytecode we can give it, over a link that crosses no
  network (``Transport.local_link``: a local interpreter, a become one behind its
  login one, a container entered from here), gets each module's compiled code
  beside its source (``_bytecode``: the child's tag, from its hello, recorded by
  ``Responder.accepts_code``; ~2.8x the bytes of the source alone, more than a slow
  link saves in the child's compiling): the root compiles for a child of its own magic
  number, at the child's optimisation level; an intermediary passes on, to a child
  of its own tag, what it was sent or what it ran itself. ``Importer.exec_module``
  runs that code where it has it, else compiles the source (``bytecode.counts``:
  how many of each, for the tests); the source still travels (tracebacks,
  ``linecache``), and the code names the same file.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import linecache
import logging
import sys
import threading
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Set

from . import _bytecode
from ._allowlist import EMPTY, FETCH, PROVIDED, REFUSE, ImportPolicy
from ._calls import Receiver, is_dead
from ._errors import PeerProtocolError, StreamError, TimeoutError
from ._modwire import Entry, Packer, WireEntry, closure, pack_bundle, unpack_bundle, valid_entry
from ._router import Router
from ._wire import GET_MODULE, IMPORT_POLICY, LOAD_MODULES, Message

LOG = logging.getLogger("ns.mitogen.importer")

#: The core's own modules: served lowered for every target Python (``_lower``).
_CORE_PREFIX = __name__.rpartition(".")[0] + "."


class Importer(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds allow-listed modules in the local cache, else asks the parent."""

    def __init__(self, router: Router, prefixes: Sequence[str], cache: Dict[str, Entry]) -> None:
        self.router = router
        self.policy = ImportPolicy(prefixes)
        self.cache: Dict[str, Entry] = dict(cache)
        self._lock = threading.Lock()
        self._inflight: Dict[str, threading.Event] = {}
        self.requests = 0
        self.arrived_with: Dict[str, List[str]] = {}  # requested module -> what the parent sent with it
        self.loaded = 0  # modules the parent sent ahead, unasked (LOAD_MODULES)
        self.bytecode = _bytecode.CodeStore()  # the code its parent sent, and what it ran
        router.add_handler(self._on_policy, IMPORT_POLICY, policy=router.from_parent)
        router.add_handler(self._on_load, LOAD_MODULES, policy=router.from_parent)

    def __repr__(self) -> str:
        return "Importer(cached=%d, prefixes=%r)" % (len(self.cache), self.prefixes)

    @property
    def prefixes(self) -> List[str]:
        return self.policy.prefixes

    def _on_policy(self, msg: Message) -> None:
        self.policy.update(msg.decode())

    def _on_load(self, msg: Message) -> None:
        """Broker thread: modules the parent sent ahead of a run that needs them; cached."""
        try:
            bundle = unpack_bundle(msg.decode(), self.router.max_message)
            self.store(bundle)
        except Exception as exc:  # an optimisation: the run asks for what is missing
            LOG.error("%s: bad module bundle from parent: %s", self.router.name, exc)
            return
        self.loaded += len(bundle)

    # -- finder -------------------------------------------------------------------
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in self.cache:
            if not self.policy.should_fetch(fullname, self.cache) or self.router.broker.on_thread:
                return None
            try:
                self.fetch(fullname)
            except (StreamError, TimeoutError) as exc:
                raise ImportError(
                    "cannot fetch %s from %s: %s" % (fullname, self.router.name_of(self.router.parent_id), exc), name=fullname
                ) from None
        return self._cached_spec(fullname)

    def _cached_spec(self, fullname: str) -> Optional[importlib.machinery.ModuleSpec]:
        """The spec of ``fullname`` as the cache has it; None if absent or known missing."""
        entry = self.cache.get(fullname)
        if entry is None or entry[2] is None:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=entry[1], is_package=entry[0])
        spec.has_location = False
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        name = module.__spec__.name
        is_pkg, filename, source, _unused = self.cache[name]
        if is_pkg:
            module.__path__ = []
        module.__file__ = filename
        text = (source or b"").decode("utf-8")
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        exec(self.bytecode.code_of(name, filename, text), module.__dict__)  # compiled with dont_inherit

    def get_source(self, fullname: str) -> Optional[str]:
        entry = self.cache.get(fullname)
        return None if entry is None or entry[2] is None else entry[2].decode("utf-8")

    # -- fetching -----------------------------------------------------------------
    def fetch(self, fullname: str, timeout: float = 120.0) -> Optional[Entry]:
        """Ask the parent for ``fullname`` (and its related modules); cache them all."""
        with self._lock:
            event = self._inflight.get(fullname)
            owner = event is None
            if event is None:
                event = self._inflight[fullname] = threading.Event()
        if not owner:
            event.wait(timeout)
            return self.cache.get(fullname)
        try:
            self.requests += 1
            recv = Receiver(self.router, respondent=self.router.parent_id)
            try:
                self.router.send(
                    Message.encoded(fullname, dst_id=self.router.parent_id or 0, handle=GET_MODULE, reply_to=recv.handle)
                )
                self.store(unpack_bundle(recv.get(timeout).decode(), self.router.max_message), fullname)
            finally:
                recv.close()
        finally:
            with self._lock:
                self._inflight.pop(fullname, None)
            event.set()
        return self.cache.get(fullname)

    def store(self, bundle: Any, requested: Optional[str] = None) -> None:
        """Cache every module of ``bundle``, the parent's answer for ``requested``.

        What came with ``requested`` is remembered (``arrived_with``): this context
        serves it along to a child that asks for ``requested`` (the parent's
        companions for it, which only the root knows), sparing that child a round
        trip per companion.
        """
        if not isinstance(bundle, dict):
            raise PeerProtocolError("GET_MODULE reply is not a dict")
        for name, entry in bundle.items():
            if not valid_entry(name, entry):
                raise PeerProtocolError("malformed module entry for %r" % (name,))
        for name, entry in bundle.items():
            old = self.cache.get(name)
            self.cache[name] = entry[:4]
            changed = old is None or old[1:3] != entry[1:3]
            self.bytecode.stored(name, entry[4] if len(entry) == 5 else None, changed)
        if requested is not None and requested not in self.arrived_with:
            self.arrived_with[requested] = [name for name in bundle if name != requested]


class Responder:
    """Answers ``GET_MODULE`` from direct children (every context has one).

    ``importer`` is this context's own ``Importer`` (None on the controller, which
    reads sources from its own files).
    """

    def __init__(self, router: Router, prefixes: Sequence[str], importer: Optional[Importer] = None) -> None:
        self.router = router
        self.importer = importer
        self._policy = ImportPolicy(prefixes)
        self._local: Dict[str, Entry] = {}  # controller: sources read from disk
        self._provided: Dict[str, bytes] = {}  # controller: package name -> the source it is served as
        self._search_first: Dict[str, List[str]] = {}  # controller: package -> directories searched before its own
        # module -> names whose trees go with it the first time a child gets it (hints
        # from whoever knows what that module will import at run time, dynamically)
        self.companions: Dict[str, List[str]] = {}
        self.sent: Dict[int, Dict[str, int]] = {}  # child id -> module -> times sent
        self.booted: Dict[int, FrozenSet[str]] = {}  # child id -> modules its boot payload held
        self.code = _bytecode.CodeServer(importer.bytecode if importer is not None else None)  # ``accepts_code``
        self.refused = 0
        self.asked: Dict[int, int] = {}  # requesting context -> GET_MODULE requests it sent here
        self._waiting: Dict[str, List[Message]] = {}
        self.cache: Any = None  # controller: keeps what is derived from sources (``_derived``)
        self._packer = Packer()
        router.add_handler(self._on_get_module, GET_MODULE, policy=router.from_child_stream)

    def __repr__(self) -> str:
        return "Responder(prefixes=%r)" % (self.prefixes,)

    @property
    def policy(self) -> ImportPolicy:
        """This context's allow-list: its importer's (updated by the parent), or its own."""
        return self.importer.policy if self.importer is not None else self._policy

    @property
    def prefixes(self) -> List[str]:
        return self.policy.prefixes

    def allow(self, prefix: str) -> None:
        """Serve the module tree ``prefix`` too (controller only); tell children."""
        self._policy.add(prefix)
        for cid in list(self.sent) + [s.remote_id for s in self.router.broker.streams if s is not self.router.parent]:
            if cid > 0:
                self.router.send(Message.encoded(list(self._policy.prefixes), dst_id=cid, handle=IMPORT_POLICY))

    def provide(self, name: str, source: bytes) -> None:
        """Serve package ``name`` as ``source`` (controller only; before any child asks).

        For packages whose own ``__init__`` must not travel: an ancestor of an allowed
        tree (``ansible``, served empty otherwise), or one whose target-side text
        differs from the controller's file. ``source`` may import only the standard
        library (its imports are not served with it).
        """
        self._provided[name] = source
        self._local.pop(name, None)

    def search_first(self, package: str, directories: Sequence[str]) -> None:
        """Look for ``package``'s submodules in ``directories`` before its own (controller only).

        For a playbook's or role's ``module_utils/`` (``ansible.module_utils``), which
        Ansible searches before its own: the same names are served from there. A
        changed list forgets what was read below ``package``, so that the next
        request finds each name where the list now says.
        """
        directories = [str(d) for d in directories]
        if self._search_first.get(package) == directories:
            return
        self._search_first[package] = directories
        for name in [n for n in self._local if n.startswith(package + ".")]:
            del self._local[name]

    def started_with(self, child: int, modules: FrozenSet[str]) -> None:
        """``child`` was booted with ``modules``: they never go to it in a bundle."""
        self.booted[child] = modules

    def accepts_code(self, child: int, tag: Any) -> None:
        """``child`` said it runs code of ``tag`` (its hello's ``code``): bundles to it carry code we have for it.

        No tag, or one this context cannot serve: source only, as to any child.
        """
        self.code.accepts(child, tag)

    # -- controller: read sources ---------------------------------------------------
    def _load_local(self, name: str) -> Optional[Entry]:
        if name in self._local:
            return self._local[name]
        entry: Optional[Entry] = None
        source = self.policy.source_of(name, self._provided)
        if source == PROVIDED:
            entry = (True, "<ns.mitogen:%s>" % name, self._provided[name], ())
        elif source == EMPTY:
            # An ancestor package of an allowed tree: served empty, never its source.
            entry = (True, "<ns.mitogen:%s>" % name, b"", ())
        else:
            from ._modscan import locate  # serving from files: the controller only

            try:
                spec = locate(name, self._search_first) if self._search_first else locate(name)
            except (ImportError, ValueError, AttributeError):
                spec = None
            if spec is not None:
                entry = self._entry_from_spec(name, spec)
        self._local[name] = entry if entry is not None else (False, "", None, ())
        return self._local[name]

    def _entry_from_spec(self, name: str, spec: importlib.machinery.ModuleSpec) -> Entry:
        is_pkg = spec.submodule_search_locations is not None
        origin = spec.origin
        if origin in (None, "namespace", "built-in", "frozen") or not str(origin).endswith(".py"):
            # Only a true namespace package is served (empty, as AnsiballZ adds an
            # empty __init__.py for it: a collection's module_utils/ or a directory in
            # it often has none). ``_modscan.locate`` makes one with no loader; the standard
            # finders' have a NamespaceLoader. Anything else without a .py file (e.g.
            # six.moves, made by six's own finder) is reported absent, so the target's
            # import machinery builds it the same way locally.
            if is_pkg and origin in (None, "namespace") and (spec.loader is None or "Namespace" in type(spec.loader).__name__):
                return (True, "<ns.mitogen:%s>" % name, b"", ())
            return (False, "", None, ())
        with open(str(origin), "rb") as fp:
            source = fp.read()
        if name.startswith(_CORE_PREFIX):
            from ._derived import lowered  # controller only: never served itself

            source = lowered(self.cache, source, str(origin))
        return (is_pkg, "master:%s" % origin, source, tuple(sorted(self._related(name, is_pkg, source))))

    def _related(self, name: str, is_pkg: bool, source: bytes) -> Set[str]:
        from ._derived import imported  # the controller only

        return self.policy.related(name, imported(self.cache, name, is_pkg, source))

    def warm(self, names: Sequence[str]) -> int:
        """Read ``names`` and what they import, before anyone asks (controller; any thread).

        Locating and scanning ``basic``'s closure takes the controller ~0.1 s, on the
        path of a target's first module run unless done beforehand (the mux does it
        while the first ssh login is under way). Returns how many names are cached.
        """
        if self.importer is not None:
            return 0
        closure(names, self._load_local, lambda mod: not self.policy.allows(mod))
        return len(self._local)

    def pack(self, bundle: Dict[str, WireEntry]) -> bytes:
        """``pack_bundle(bundle)``, compressed once per process and content (``_modwire.Packer``)."""
        return self._packer.pack(bundle, self.cache)

    # -- answering ------------------------------------------------------------------
    def _lookup(self, name: str) -> Optional[Entry]:
        if self.importer is None:
            return self._load_local(name)
        return self.importer.cache.get(name)

    def _bundle(self, name: str, child: int) -> Dict[str, WireEntry]:
        """``name``, its companions and every related module ``child`` lacks (a request's answer)."""
        return self.bundle_for(child, [name], required=name)

    def bundle_for(
        self, child: int, names: Sequence[str], also_has: Sequence[str] = (), required: Optional[str] = None
    ) -> Dict[str, WireEntry]:
        """``names``, their companions and every related module ``child`` lacks; counted as sent.

        ``also_has``: modules ``child`` can import without asking across the link
        (what its parent on the same host holds, which answers it there).
        ``required`` goes in even if sent before (it was asked for again).
        Related names that are not modules here (an imported attribute, or
        ``six.moves`` that six's own finder makes) go too, as absent: the child would
        otherwise ask for each, one round trip apiece, to hear the same answer.
        Each entry carries its code where ``child`` runs code we have (``accepts_code``).
        """
        have = self.sent.setdefault(child, {})
        booted = self.booted.get(child, frozenset())
        todo = list(names)
        for name in names:
            if name not in have:  # companions are hints: only allowed trees, as ever
                todo += self.policy.companions(self.companions.get(name, []))
                if self.importer is not None:  # an intermediary: what its parent sent along
                    todo += self.policy.companions(self.importer.arrived_with.get(name, []))
        skipped = set(also_has)
        bundle = closure(todo, self._lookup, lambda mod: (mod in have or mod in booted or mod in skipped) and mod != required)
        out: Dict[str, WireEntry] = {}
        for mod, entry in bundle.items():
            have[mod] = have.get(mod, 0) + 1
            field = self.code.field(child, mod, entry, self.cache)
            out[mod] = entry if field is None else entry + (field,)
        return out

    def _on_get_module(self, msg: Message) -> None:
        name = msg.decode()
        self.asked[msg.src_id] = self.asked.get(msg.src_id, 0) + 1
        action = self.policy.request(name, None if self.importer is None else self.importer.cache)
        if action == REFUSE:
            self.refused += 1
            LOG.warning(
                "%s: refused module %r to %s: not on the allow-list", self.router.name, name, self.router.name_of(msg.src_id)
            )
            self.router.send(msg.reply_message(pack_bundle({name: (False, "", None, ())})))
            return
        if action == FETCH and self.importer is not None:
            self._fetch_upwards(self.importer, name, msg)
            return
        self.router.send(msg.reply_message(self.pack(self._bundle(name, msg.src_id))))

    def _fetch_upwards(self, importer: Importer, name: str, msg: Message) -> None:
        """Intermediary: ask our parent without importing; answer waiting children."""
        waiting = self._waiting.setdefault(name, [])
        waiting.append(msg)
        if len(waiting) > 1:
            return

        def _on_reply(reply: Message) -> None:
            pending = self._waiting.pop(name, [])
            if not is_dead(reply):
                try:
                    importer.store(unpack_bundle(reply.decode(), self.router.max_message), name)
                except Exception as exc:
                    LOG.error("%s: bad module reply from parent: %s", self.router.name, exc)
            importer.cache.setdefault(name, (False, "", None, ()))
            for req in pending:
                self.router.send(req.reply_message(self.pack(self._bundle(name, req.src_id))))

        handle = self.router.add_handler(
            _on_reply, policy=lambda m: m.src_id == self.router.parent_id, persist=False, respondent=self.router.parent_id
        )
        self.router.send(Message.encoded(name, dst_id=self.router.parent_id or 0, handle=GET_MODULE, reply_to=handle))


def install(importer: Importer) -> None:
    """Put ``importer`` first on ``sys.meta_path`` (allowed trees win over local copies)."""
    if importer not in sys.meta_path:
        sys.meta_path.insert(0, importer)
