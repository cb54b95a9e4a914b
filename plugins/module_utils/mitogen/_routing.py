# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to do with each message: the trust gate, without I/O (private module).

Owns: ``RouteTable`` (the route table: context id -> stream, the parent stream,
context names, handles with their policies, the ids the root allocated, counters)
and the actions it decides (``Deliver``, ``Forward``, ``Refuse``, ``Drop``,
``ReplyError``). ``_router.Router`` executes them: it sends, refuses with a reply,
runs handlers and applies back-pressure. Nothing here sends, logs, sleeps or takes
a lock; a stream is any hashable object (the router's are ``_stream.Stream``), so
every rule is tested in memory (tests/unit/test_trust.py).

Trust rules decided here (``route`` sees every message a peer sends):
- Parents command children, never the reverse: ``CALL_FUNCTION`` and ``SHUTDOWN``
  are accepted only from the parent stream (``from_parent``). A child reaches its
  ancestors only through handles whose policy admits it.
- A message from a child stream must carry a source id routed to that very stream
  (no forged source ids: dropped), and may travel only upwards: never down into
  another subtree (no routing to siblings: refused).
- A message for a handle that does not exist, or whose policy does not admit the
  sender, is refused (the sender's reply handle hears why).
- A message is never sent back over the stream it came from (dropped).
- ``ADD_ROUTE`` and ``DEL_ROUTE`` come only from a direct child over its own
  stream (``from_child_stream``), and change only routes through that stream: a
  child cannot take over, nor remove, another subtree's routes. The root accepts
  a new route only for an id it allocated.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ._errors import PeerProtocolError, StreamError
from ._wire import ADD_ROUTE, ALLOCATE_ID, CALL_FUNCTION, DEL_ROUTE, FIRST_DYNAMIC_HANDLE, SHUTDOWN, Message

Policy = Callable[[Message], bool]


# -- actions --------------------------------------------------------------------------
class Action:
    """What ``RouteTable.route`` decided; compared by kind and fields (for tests)."""

    __slots__ = ()

    def _fields(self) -> tuple:
        names: Tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields() == self._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join(repr(f) for f in self._fields()))


class Deliver(Action):
    """Run ``handler.fn(msg)`` here (the handle was removed already unless it persists)."""

    __slots__ = ("handler",)

    def __init__(self, handler: "Handler") -> None:
        self.handler = handler


class Forward(Action):
    """Send the message on over ``stream``."""

    __slots__ = ("stream",)

    def __init__(self, stream: Any) -> None:
        self.stream = stream


class Refuse(Action):
    """Refuse the message: count and log ``reason``; a reply handle hears a ``RefusedError``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Drop(Action):
    """Drop the message without a word to the sender; ``reason`` is logged if not empty."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ReplyError(Action):
    """The message cannot go on: a reply handle hears ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def _fields(self) -> tuple:
        return (type(self.error), str(self.error))


class Handler:
    """A registered handle: ``fn(msg)``, its ``policy``, whether it stays after one
    message (``persist``), and the context it waits on (``respondent``)."""

    __slots__ = ("fn", "policy", "persist", "respondent")

    def __init__(self, fn: Callable[[Message], Any], policy: Policy, persist: bool, respondent: Optional[int]) -> None:
        self.fn = fn
        self.policy = policy
        self.persist = persist
        self.respondent = respondent

    def __repr__(self) -> str:
        return "Handler(%r, respondent=%s)" % (self.fn, self.respondent)


class RouteTable:
    """The routing state of one context (``context_id``) and the decisions on it.

    ``connected(stream)`` says whether a stream can still carry a message (the
    router's asks the stream; tests pass what they like).
    """

    #: The handles every context has, and the policy each is held to.
    BUILTIN = {
        CALL_FUNCTION: "from_parent",
        SHUTDOWN: "from_parent",
        ADD_ROUTE: "from_child_stream",
        DEL_ROUTE: "from_child_stream",
        ALLOCATE_ID: "from_descendant",
    }

    def __init__(
        self, context_id: int = 0, name: str = "controller", connected: Callable[[Any], bool] = lambda stream: True
    ) -> None:
        self.context_id = context_id
        self.name = name
        self.connected = connected
        self.parent: Any = None
        self.parent_id: Optional[int] = None
        self.routes: Dict[int, Any] = {}
        self.peers: Dict[Any, int] = {}  # direct child stream -> the child's context id
        self.names: Dict[int, str] = {context_id: name}
        self.handlers: Dict[int, Handler] = {}
        self.allocated: Set[int] = set()
        self.stats: Dict[str, int] = {"refused": 0, "forged": 0, "no_route": 0}
        self._handle_ids = itertools.count(FIRST_DYNAMIC_HANDLE)
        self._id_counter = itertools.count(context_id + 1)

    def __repr__(self) -> str:
        return "RouteTable(%d %r, routes=%d)" % (self.context_id, self.name, len(self.routes))

    # -- policies -----------------------------------------------------------------
    def from_parent(self, msg: Message) -> bool:
        """Admit messages from this process or from the parent stream (ancestors)."""
        return msg.stream is None or msg.stream is self.parent

    def from_child_stream(self, msg: Message) -> bool:
        """Admit messages sent by a direct child over its own stream (never the parent's:
        ``peers`` holds only streams ``attach`` gave a child)."""
        return msg.stream is not None and self.peers.get(msg.stream) == msg.src_id

    def reply_policy(self, respondent: int) -> Policy:
        """Admit messages from ``respondent``, and errors from hops on the way to it."""

        def policy(msg: Message) -> bool:
            if msg.src_id == respondent:
                return True
            # A hop between us and the respondent may report that it cannot deliver.
            return msg.is_error and (
                self.from_parent(msg) or (msg.stream is not None and self.route_for(respondent) is msg.stream)
            )

        return policy

    def from_descendant(self, msg: Message) -> bool:
        """Admit messages from any context below this one (or this process)."""
        return msg.stream is None or msg.stream is not self.parent

    # -- handles ------------------------------------------------------------------
    def add_handler(
        self,
        fn: Callable[[Message], Any],
        handle: Optional[int] = None,
        policy: Optional[Policy] = None,
        persist: bool = True,
        respondent: Optional[int] = None,
    ) -> int:
        """Register ``fn`` for ``handle`` (a fresh one if None; policy ``from_parent``)."""
        if handle is None:
            handle = next(self._handle_ids)
        self.handlers[handle] = Handler(fn, policy or self.from_parent, persist, respondent)
        return handle

    def install_builtins(self, fns: Dict[int, Callable[[Message], Any]]) -> None:
        """Register the built-in handles (``BUILTIN``) with their policies."""
        for handle, policy in self.BUILTIN.items():
            self.add_handler(fns[handle], handle, policy=getattr(self, policy))

    def take_waiting(self, lost: Optional[Iterable[int]]) -> List[Handler]:
        """Remove and return the handlers waiting on a context in ``lost`` (None: any)."""
        lost_set = None if lost is None else set(lost)
        out = []
        for handle, h in list(self.handlers.items()):
            if h.respondent is not None and (lost_set is None or h.respondent in lost_set):
                del self.handlers[handle]
                out.append(h)
        return out

    # -- names and routes -----------------------------------------------------------
    def name_of(self, context_id: Optional[int]) -> str:
        if context_id is None:
            return "any context"
        return self.names.get(context_id, "context %d" % context_id)

    def route_for(self, context_id: int) -> Any:
        return self.routes.get(context_id, self.parent)

    def set_parent(self, stream: Any, parent_id: int) -> None:
        self.parent = stream
        self.parent_id = parent_id

    def attach(self, stream: Any, context_id: int, name: str) -> None:
        """A direct child ``context_id`` now speaks over ``stream``."""
        self.routes[context_id] = stream
        self.peers[stream] = context_id
        self.names[context_id] = name

    def allocate(self) -> int:
        """A fresh context id (the root's; the caller serialises calls)."""
        new = next(self._id_counter)
        self.allocated.add(new)
        return new

    def stream_lost(self, stream: Any) -> Set[int]:
        """Forget every route through ``stream``; return the ids behind it."""
        lost = {i for i, s in self.routes.items() if s is stream}
        for i in lost:
            del self.routes[i]
        self.peers.pop(stream, None)
        return lost

    def forget(self, ids: Iterable[int]) -> None:
        for i in ids:
            self.routes.pop(i, None)

    # -- decisions ------------------------------------------------------------------
    def route(self, msg: Message) -> Action:
        """What to do with ``msg`` (``msg.stream``: where it came from, None if sent here)."""
        src_stream = msg.stream
        from_child = src_stream is not None and src_stream is not self.parent
        if from_child and self.routes.get(msg.src_id) is not src_stream:
            self.stats["forged"] += 1
            return Drop("source id is not behind that stream")
        if msg.dst_id == self.context_id:
            return self._deliver(msg)
        out = self.routes.get(msg.dst_id)
        if out is None:
            out = self.parent
        elif from_child:
            return self.refuse("a context may not send to %s, which is not its ancestor" % self.name_of(msg.dst_id))
        if out is None or not self.connected(out):
            self.stats["no_route"] += 1
            return ReplyError(StreamError("%s: no route to %s" % (self.name, self.name_of(msg.dst_id))))
        if out is src_stream:
            return Drop("it would go back where it came from")
        return Forward(out)

    def _deliver(self, msg: Message) -> Action:
        handler = self.handlers.get(msg.handle)
        if handler is None:
            if msg.stream is None:
                return Drop("")  # a late reply of our own, to a handle closed meanwhile
            return self.refuse("no handle %d here" % msg.handle)
        if not handler.policy(msg):
            return self.refuse("handle %d does not accept messages from %s" % (msg.handle, self.name_of(msg.src_id)))
        if not handler.persist:
            self.handlers.pop(msg.handle, None)
        return Deliver(handler)

    def refuse(self, reason: str) -> Refuse:
        self.stats["refused"] += 1
        return Refuse(reason)

    def allocate_for(self) -> Optional[Refuse]:
        """``ALLOCATE_ID`` (admitted by its policy): refused unless this is the root."""
        if self.parent is not None:
            return self.refuse("only the root allocates context ids")
        return None

    def add_route(self, msg: Message) -> Optional[Refuse]:
        """``ADD_ROUTE`` from a child stream: record the route, or refuse it.

        Refused for this context's own id, an id routed through another stream, or
        (at the root) an id it never allocated.
        """
        body = msg.decode()
        if not (isinstance(body, tuple) and len(body) == 2 and isinstance(body[0], int) and isinstance(body[1], str)):
            raise PeerProtocolError("malformed ADD_ROUTE")
        new_id, name = body
        current = self.routes.get(new_id)
        if new_id == self.context_id or (current is not None and current is not msg.stream):
            return self.refuse("route to %s is already held elsewhere" % self.name_of(new_id))
        if self.parent is None and new_id not in self.allocated:
            return self.refuse("context id %d was never allocated" % new_id)
        self.routes[new_id] = msg.stream
        self.names[new_id] = name
        return None

    def del_route(self, msg: Message) -> Tuple[Set[int], StreamError]:
        """``DEL_ROUTE`` from a child stream: the ids it may report lost, and why.

        Only ids routed through that stream count, never the sender's own (its
        stream's loss says that).
        """
        body = msg.decode()
        if not (isinstance(body, tuple) and len(body) == 2 and isinstance(body[1], StreamError) and isinstance(body[0], list)):
            raise PeerProtocolError("malformed DEL_ROUTE")
        ids, cause = body
        lost = {i for i in ids if isinstance(i, int) and self.routes.get(i) is msg.stream and i != msg.src_id}
        return lost, cause
