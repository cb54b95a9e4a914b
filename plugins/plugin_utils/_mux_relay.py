# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mux's relay of workers' calls to their contexts, with their modules' sources (private).

Owns: ``Relay``, the part of ``_mux_server.MuxServer`` that takes a worker's
``call`` to the context of its stack (claimed for the call's time, so that the
interpreter limit's recycling never retires it under a call: ``_recycler``),
starting the context first if none serves it, and passes the reply back as it
came. A module run carries its module's source the first time a context runs
it (``_mux_sources``), unless the target can take it nearer: from its
intermediary's cache (``_mux_hops``) or its login interpreter on the same host;
its module_utils go ahead of it (``_mux_modules``), and so on ahead of the
host's next task when our strategy says what that is (``_send_ahead``). Uses
nothing of Ansible's, only the core (through ``api``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError, Error, StreamError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    CACHE_SOURCE,
    CALL_FUNCTION,
    FLAG_ERROR,
    KEEP_SOURCE,
    Encoded,
    Message,
    Stream,
    dead_error,
    decode,
    is_dead,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux import RUN_MODULE, RUN_THEN
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_contexts import Contexts
from ansible_collections.ns.mitogen.plugins.plugin_utils._recycler import DEFAULT_LIMIT

LOG = logging.getLogger("ns.mitogen.mux")


class Relay(Contexts):
    """Mixed into ``MuxServer``, which sets the attributes up (``Contexts``) and replies (``_reply``)."""

    router: Any  # the session's router

    def _reply(self, stream: Stream, req: Message, value: Any, flags: int = 0) -> None:
        raise NotImplementedError

    def _claim(self, context_id: Any, key: Any) -> Tuple[Optional[int], Any]:
        """The live context a call goes to, its call counted in flight; else (None, its stack's key).

        A context id this mux retired is followed to its stack's interpreter now;
        one lost otherwise is returned as it is (the call then fails as lost).
        """
        with self._lock:
            if context_id is not None:
                if self._recycler.claim(context_id):
                    return context_id, None
                key = self._recycler.retired_key(context_id)
                if key is None:
                    return context_id, None
            ctx = self._contexts.get(key)
            if ctx is not None and self._recycler.claim(ctx.context_id):
                return ctx.context_id, None
            return None, key

    def _release(self, context_id: int) -> None:
        with self._lock:
            self._recycler.release(context_id)

    def _claim_or_start(self, context_id: int) -> int:
        """Pool thread: ``_claim``, starting the context again if it was retired."""
        for _attempt in range(3):
            claimed, key = self._claim(context_id, None)
            if claimed is not None:
                return claimed
            login_hops, limit = self._how.get(key, (1, DEFAULT_LIMIT))
            context_id = self.connect(json.loads(key), login_hops, limit)["context_id"]
        raise Error("the interpreter was retired again as it started (interpreter limit too small?)")

    def _connect_and_relay(self, stream: Stream, msg: Message, call: Dict[str, Any], key: Any) -> None:
        """Pool thread: start the context for the call's stack, then relay the call to it."""
        try:
            stack = decode(call["stack"]) if key == call.get("key") and "stack" in call else json.loads(key)
            if not isinstance(stack, list):
                raise Error("malformed call: the stack is not a list")
            how = self._how.get(key, (1, DEFAULT_LIMIT))
            login_hops = int(call.get("login_hops") or how[0])
            limit = int(call.get("max_interpreters") or how[1])
            started = self.connect(stack, login_hops, limit, call.get("pool_size"))
            context_id = self._claim_or_start(started["context_id"])
        except Exception as exc:
            self._reply(stream, msg, wire_error(exc), FLAG_ERROR)
            return
        self.router.broker.defer(lambda: self._relay_call(stream, msg, context_id, call))

    def _relay_call(self, stream: Stream, req: Message, context_id: int, call: Dict[str, Any]) -> None:
        """Broker thread: send the call on, its arguments as the worker encoded them."""
        try:
            self._relay(stream, req, context_id, call)
        except Exception as exc:  # a worker must get an answer, never wait forever
            self._release(context_id)
            self._reply(stream, req, wire_error(exc), FLAG_ERROR)

    def _relay(self, stream: Stream, req: Message, context_id: int, call: Dict[str, Any]) -> None:
        ref, args = call.get("ref"), call.get("args")
        if not (isinstance(ref, tuple) and len(ref) == 2 and isinstance(args, bytes)):
            raise Error("malformed call request: arguments not encoded by the worker")
        extra: Dict[str, Any] = {}
        attached = 0
        if isinstance(call.get("host"), str):
            self._last_context[call["host"]] = context_id
        if ref in (RUN_MODULE, RUN_THEN):
            dirs = call.get("module_utils_dirs")
            if isinstance(dirs, list) and all(isinstance(d, str) for d in dirs):  # a playbook's/role's module_utils
                self.session.responder.search_first("ansible.module_utils", dirs)
            attached, source, fetch = self._module_source(
                context_id, call.get("source_id"), call.get("source_path"), call.get("module_name")
            )
            if fetch:
                extra["fetch_source"] = True
            if source is not None:
                extra["source"] = source
            then_sources: Dict[str, bytes] = {}
            follow_ups = call.get("then_sources") if ref == RUN_THEN else None
            for entry in follow_ups if isinstance(follow_ups, list) else ():
                if isinstance(entry, list) and len(entry) == 3:  # a follow-up's module: sent as the run's own
                    count, source, fetch = self._module_source(context_id, entry[0], entry[1], entry[2], follow_up=True)
                    attached += count
                    if fetch:
                        extra["fetch_source"] = True
                    if source is not None:
                        then_sources[entry[0]] = source
            if then_sources:
                extra["then_sources"] = then_sources
        note = call.get("progress_handle")
        asked = self.modules.asked_on_route(context_id) if note is not None else 0

        def _back(reply: Message) -> None:
            self._release(context_id)
            if note is not None:  # what the target asked across the link meanwhile, what went along (_roundtrips)
                count = self.modules.asked_on_route(context_id) - asked
                if count or attached:
                    stream.send(Message.encoded({"asked": count, "sources": attached}, handle=int(note)))
            if is_dead(reply):
                stream.send(Message.encoded(dead_error(reply), handle=req.reply_to, flags=FLAG_ERROR))
            else:
                stream.send(Message(handle=req.reply_to, flags=reply.flags, data=reply.data))

        handle = self.router.add_handler(_back, persist=False, respondent=context_id, policy=self.router.reply_policy(context_id))
        body = (ref, Encoded(args), extra)
        self.router.send(Message.encoded(body, dst_id=context_id, handle=CALL_FUNCTION, reply_to=handle))

    def _module_source(
        self, context_id: int, source_id: Any, path: Any, name: Any, follow_up: bool = False
    ) -> Tuple[int, Optional[bytes], bool]:
        """How a module run in ``context_id`` gets its source: (sources attached, the source
        to attach or None, whether the target fetches it from its parent).

        ``follow_up``: a ``RUN_THEN`` follow-up, which may not run: one the target would
        fetch from its login interpreter is not marked as held there (it may never be)."""
        hop = self.hops.hop_of(context_id)
        if hop is not None:  # the target asks its parent, the intermediary, which has it
            source = self.sources.give(hop, source_id, path)
            if source is not None:  # on the same stream, ahead of the call: kept before it passes
                self.router.send(Message.encoded(source, dst_id=hop, handle=CACHE_SOURCE))
            return 0, None, True
        if self._from_login(context_id, source_id, path, mark=not follow_up):
            return 0, None, True  # its login interpreter has it: asked there, not across the link
        source = self.sources.attach(context_id, source_id, path)
        if source is None:
            return 0, None, False
        if isinstance(name, str):  # its module_utils, ahead of it: the target asks for none
            self.modules.push(context_id, str(source_id), name, source)
        return 1, source, False

    def _from_login(self, context_id: int, source_id: Any, path: Any, mark: bool = True) -> bool:
        """True if a become interpreter's run may take its module source from its login interpreter.

        So when the login interpreter was sent the source (it ran the module, or had
        it sent ahead) and this one was not: the login one's cache answers it on the
        host (``_hopcache``, which every interpreter that started another has).
        """
        if not isinstance(source_id, str) or not isinstance(path, str) or self.sources.has(context_id, source_id):
            return False
        login = self.modules.login_of(context_id)
        if login == context_id or not self.sources.has(login, source_id):
            return False
        if mark:
            self.sources.mark(context_id, source_id)
        return True

    def _send_ahead(self, host: Any, source_id: Any, source_path: Any, module_name: Any) -> None:
        """Broker thread: send a module, and what it imports, to where ``host``'s next task will likely run it.

        From our strategy, which sees the host's next task as it queues the current
        one: sent one way to the login interpreter of the host's latest call (as that
        task runs), so that the next call carries no source and its target asks for no
        module_util across the link (a become interpreter asks its login one, on the
        host: ``_from_login``). Not behind an intermediary (its cache serves those).
        Never an error: the next run gets what is missing as it would have.
        """
        try:
            context_id = self._last_context.get(host) if isinstance(host, str) else None
            context_id = None if context_id is None else self.modules.login_of(context_id)
            if context_id is None or not isinstance(module_name, str) or self.hops.hop_of(context_id) is not None:
                return
            source = self.sources.send_ahead(context_id, source_id, source_path)
            if source is None:
                return
            self.router.send(Message.encoded(source, dst_id=context_id, handle=KEEP_SOURCE))
            self.modules.push(context_id, str(source_id), module_name, source)
        except Exception as exc:
            LOG.warning("could not send %s ahead to %s: %s", module_name, host, exc)


def wire_error(exc: Exception) -> Exception:
    """What a failed request replies: stream errors as they are, the rest as a CallError."""
    return exc if isinstance(exc, StreamError) else CallError.from_exception(exc, "mux")
