# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public Python API of the ns.mitogen core.

A ``Session`` owns one broker thread and the controller's router. From it you start
contexts (persistent Python interpreters) locally, over SSH, or with sudo, each
optionally ``via=`` another context, call functions in them, and stream files::

    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session
    import os

    with Session() as s:
        web = s.ssh("web1.example.com", username="deploy")
        root = s.sudo(via=web)                     # sudo -u root on web1
        print(root.call(os.getuid))                # 0
        s.push_file(root, "app.tar.gz", "/srv/app.tar.gz")
        s.fetch_file(root, "/etc/os-release", "web1-os-release")

Guarantees: every failure to start a context raises ``ConnectError`` within the
connect timeout, naming the context and the cause; a call on a context that dies
raises ``StreamError`` at once; ``close()`` stops every context started from the
session and waits for their processes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

__all__ = [
    "Session",
    "Context",
    "Error",
    "CallError",
    "ConnectError",
    "ProtocolError",
    "RefusedError",
    "SpecError",
    "StreamError",
    "TimeoutError",
    # the controller toolkit (see the end of this file)
    "CACHE_SOURCE",
    "CALL_FUNCTION",
    "CHILDREN",
    "CORE_MIN_PYTHON",
    "CORE_PACKAGE",
    "DEFAULT_HOP_CACHE",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_POOL_SIZE",
    "HOPCACHE_SERVICE",
    "FLAG_ERROR",
    "KEEP_SOURCE",
    "LOAD_MODULES",
    "ChildProcess",
    "Encoded",
    "FrameParser",
    "Message",
    "Service",
    "Stream",
    "Transport",
    "check_size",
    "dead_error",
    "decode",
    "encode",
    "expose",
    "imported_names",
    "is_dead",
    "make_transport",
    "option_value",
    "pack_bundle",
    "read_some",
    "redacted",
    "write_some",
]

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use
    from ._bootstrap import ChildProcess, read_some, write_some
    from ._calls import Context, dead_error, is_dead
    from ._codec import Encoded, decode, encode
    from ._errors import CallError, ConnectError, Error, ProtocolError, RefusedError, StreamError, TimeoutError
    from ._hopcache import SERVICE as HOPCACHE_SERVICE
    from ._methods import make as make_transport
    from ._modscan import imported_names
    from ._modwire import pack_bundle
    from ._service import CHILDREN, Service, expose
    from ._session import DEFAULT_HOP_CACHE, Session
    from ._stream import Stream
    from ._transports import SpecError, Transport, option_value, redacted
    from ._wire import (
        CACHE_SOURCE,
        CALL_FUNCTION,
        CORE_MIN_PYTHON,
        DEFAULT_MAX_MESSAGE,
        FLAG_ERROR,
        KEEP_SOURCE,
        LOAD_MODULES,
        FrameParser,
        Message,
        check_size,
    )

#: Where each name lives: (private module, its name there). Importing ``api`` loads
#: none of them; ``from api import X`` loads X's module only. Every Ansible worker under
#: a built-in strategy imports the client side afresh: loading the whole core for the
#: few names it uses (the codec, the wire, ``redacted``) was a third of its imports.
_WHERE: Dict[str, tuple] = {
    "Session": ("_session", "Session"),
    "DEFAULT_HOP_CACHE": ("_session", "DEFAULT_HOP_CACHE"),
    "Context": ("_calls", "Context"),
    "dead_error": ("_calls", "dead_error"),
    "is_dead": ("_calls", "is_dead"),
    "ChildProcess": ("_bootstrap", "ChildProcess"),
    "read_some": ("_bootstrap", "read_some"),
    "write_some": ("_bootstrap", "write_some"),
    "Encoded": ("_codec", "Encoded"),
    "decode": ("_codec", "decode"),
    "encode": ("_codec", "encode"),
    "HOPCACHE_SERVICE": ("_hopcache", "SERVICE"),
    "make_transport": ("_methods", "make"),
    "imported_names": ("_modscan", "imported_names"),
    "pack_bundle": ("_modwire", "pack_bundle"),
    "CHILDREN": ("_service", "CHILDREN"),
    "Service": ("_service", "Service"),
    "expose": ("_service", "expose"),
    "Stream": ("_stream", "Stream"),
    "CORE_MIN_PYTHON": ("_wire", "CORE_MIN_PYTHON"),
    "SpecError": ("_transports", "SpecError"),
    "Transport": ("_transports", "Transport"),
    "option_value": ("_transports", "option_value"),
    "redacted": ("_transports", "redacted"),
    "CACHE_SOURCE": ("_wire", "CACHE_SOURCE"),
    "CALL_FUNCTION": ("_wire", "CALL_FUNCTION"),
    "DEFAULT_MAX_MESSAGE": ("_wire", "DEFAULT_MAX_MESSAGE"),
    "FLAG_ERROR": ("_wire", "FLAG_ERROR"),
    "KEEP_SOURCE": ("_wire", "KEEP_SOURCE"),
    "LOAD_MODULES": ("_wire", "LOAD_MODULES"),
    "FrameParser": ("_wire", "FrameParser"),
    "Message": ("_wire", "Message"),
    "check_size": ("_wire", "check_size"),
}
_WHERE.update((name, ("_errors", name)) for name in ("CallError", "ConnectError", "Error", "ProtocolError"))
_WHERE.update((name, ("_errors", name)) for name in ("RefusedError", "StreamError", "TimeoutError"))


def __getattr__(name: str) -> Any:
    """``api.<name>``: imported from its module on first use, then kept here."""
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError("module %r has no attribute %r" % (__name__, name)) from None
    value = getattr(importlib.import_module(__name__.rpartition(".")[0] + "." + module), attribute)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_WHERE))


# -- the controller toolkit -----------------------------------------------------------
# What ns.mitogen's own controller code (plugins/plugin_utils, plugins/connection, ...)
# uses of the core besides ``Session``: the one boundary it imports through (with
# ``_errors``; tests/unit/test_boundaries.py holds it to that). The names stay here
# whichever private module implements them. Contracts:
#
# Connection specs and transports
#   ``make_transport(spec)``: the ``Transport`` for a hop spec (raises ``SpecError``):
#       ``argv(first_stage)``, ``describe()``, ``use_pty``, ``on_text(channel, text)``
#       (the answer to a prompt, or None; raises ``ConnectError``), ``prompts_answered``,
#       ``retry_pauses()``.
#   ``redacted(value)``: a copy of a spec (or stack, or any JSON-like value) with every
#       secret (passwords, key material) replaced; for logs and reports.
#   ``option_value(argv, name)``: the value ssh uses for ``-o name=...`` in an ssh
#       argv (the first one given, as ssh reads it), else None.
#   ``CORE_MIN_PYTHON``: the oldest target Python the core runs on, a (major, minor) tuple.
#   ``CORE_PACKAGE``: the core's package name (target functions are named under it).
#
# Child programs (one command through a transport, no interpreter: ``_oneshot``)
#   ``ChildProcess(argv, use_pty, name)``: a started child with ``stdin``, ``stdout``,
#       ``stderr_fd``, ``tty_fd`` (None without a pty), ``proc``; ``reap_and_forget(t)``.
#   ``read_some(fd)``: what a child's pipe or pty holds now (b"" at its end);
#   ``write_some(fd, pending)``: the rest of ``pending`` after one non-blocking write
#       (b"" if the reader is gone).
#
# The wire, for a relay of calls (the multiplexer)
#   ``Message`` (``encoded(value, **header)``, ``decode()``, ``pack()``, header fields),
#   ``FrameParser().feed(data)`` -> complete messages, ``check_size(msg, limit)`` (raises
#   ``ProtocolError``), ``DEFAULT_MAX_MESSAGE``, ``CALL_FUNCTION`` (the handle a call goes
#   to), ``FLAG_ERROR`` (the body is an error); ``encode(value)`` / ``decode(data)`` (the
#   codec), ``Encoded(data)`` (bytes already encoded, embedded as they are);
#   ``Stream(broker, rfd, wfd, name, on_message=, on_disconnect=, max_message=)``, a
#   framed stream the broker thread serves; ``is_dead(reply)`` / ``dead_error(reply)``:
#   whether a reply says its route died, and the ``StreamError`` naming why.
#
# Module sources
#   ``imported_names(name, is_pkg, source)``: the absolute names ``source`` (module
#   ``name``) may import, modules and ``from`` targets, found statically.
#   ``HOPCACHE_SERVICE``: the name of the service a context asks its parent for a
#       module source it lacks (``source(source_id=sha1) -> bytes | None``, any
#       descendant may call it): the root registers one of that name to answer.
#   ``CACHE_SOURCE``: the handle an intermediary keeps a module source sent to it on
#       (the encoded bytes; from its parent only), for the runs of its children.
#   ``LOAD_MODULES``: the handle a context's importer caches a bundle on, sent ahead of
#       the run that needs it (``pack_bundle(session.responder.bundle_for(...))``; from
#       its parent only); ``session.responder.asked``: GET_MODULE requests per context.
#   ``KEEP_SOURCE``: the handle a context caches a module source on (the encoded bytes;
#       from its parent only), sent ahead of the run that will need it.
#
# Connection setup
#   ``DEFAULT_POOL_SIZE``: how many connections start at once by default, as the
#       original Mitogen's (``MITOGEN_POOL_SIZE``); ``Session(pool_size=)``.

CORE_PACKAGE = __name__.rpartition(".")[0]
DEFAULT_POOL_SIZE = 16
