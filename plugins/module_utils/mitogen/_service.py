# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named services with exposed methods (private module).

Owns: ``Service`` (a base class), the ``expose`` decorator, the ``ServiceRegistry``
that answers ``CALL_SERVICE`` in a context, and ``call_service`` to reach one.

Rules it keeps:
- Only methods marked ``@expose(...)`` can be reached; anything else is refused.
- Each exposed method names who may call it (``PARENT``: this context's ancestors;
  ``CHILDREN``: any context below it; or a callable taking the message) and the
  exact keyword arguments with their types. Unknown, missing or mistyped arguments
  are refused before the method runs.
- Methods run on the call pool, never on the broker thread, and get the caller's
  context id as ``caller``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ._calls import Receiver
from ._errors import CallError, PeerProtocolError, RefusedError
from ._router import Router
from ._wire import CALL_SERVICE, FLAG_ERROR, Message

LOG = logging.getLogger("ns.mitogen.service")

PARENT = "parent"
CHILDREN = "children"

PolicySpec = Union[str, Callable[[Router, Message], bool]]


def expose(policy: PolicySpec, **arg_types: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a service method as callable by peers that ``policy`` admits.

    ``arg_types`` maps every keyword argument to a type or tuple of types; an
    argument may be optional only if the method gives it a default.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn._nsm_exposed = (policy, arg_types)  # type: ignore[attr-defined]
        return fn

    return decorate


class Service:
    """Base class: set ``name``; mark methods with ``@expose``."""

    name = ""

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.name)


def _admits(policy: PolicySpec, router: Router, msg: Message) -> bool:
    if policy == PARENT:
        return router.from_parent(msg)
    if policy == CHILDREN:
        return router.from_descendant(msg)
    if callable(policy):
        return bool(policy(router, msg))
    return False


class ServiceRegistry:
    """The services of one context, reachable through ``CALL_SERVICE``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._services: Dict[str, Service] = {}
        router.add_handler(self._on_call, CALL_SERVICE, policy=lambda msg: True)

    def __repr__(self) -> str:
        return "ServiceRegistry(%s)" % sorted(self._services)

    def register(self, service: Service) -> Service:
        if not service.name:
            raise ValueError("%r has no name" % service)
        self._services[service.name] = service
        return service

    def get(self, name: str) -> Optional[Service]:
        return self._services.get(name)

    def _on_call(self, msg: Message) -> None:
        self.router.pool.submit_fn(self._run, msg)

    def _check(self, msg: Message) -> Tuple[Callable[..., Any], Dict[str, Any]]:
        body = msg.decode()
        if not (
            isinstance(body, tuple)
            and len(body) == 3
            and isinstance(body[0], str)
            and isinstance(body[1], str)
            and isinstance(body[2], dict)
        ):
            raise PeerProtocolError("malformed service call")
        sname, mname, kwargs = body
        who = self.router.name_of(msg.src_id)
        service = self._services.get(sname)
        method = getattr(service, mname, None) if service is not None and not mname.startswith("_") else None
        exposed = getattr(method, "_nsm_exposed", None)
        if method is None or exposed is None:
            raise RefusedError("%s: %s.%s is not an exposed service method (asked by %s)" % (self.router.name, sname, mname, who))
        policy, arg_types = exposed
        if not _admits(policy, self.router, msg):
            raise RefusedError("%s: %s.%s may not be called by %s" % (self.router.name, sname, mname, who))
        for key, value in kwargs.items():
            if key not in arg_types:
                raise RefusedError("%s.%s: unexpected argument %r" % (sname, mname, key))
            if not isinstance(value, arg_types[key]) or (isinstance(value, bool) and arg_types[key] is int):
                raise RefusedError(
                    "%s.%s: argument %r must be %s, not %s" % (sname, mname, key, arg_types[key], type(value).__name__)
                )
        return method, kwargs

    def _run(self, msg: Message) -> None:
        try:
            method, kwargs = self._check(msg)
            value, flags = method(caller=msg.src_id, **kwargs), 0
        except Exception as exc:
            if isinstance(exc, RefusedError):
                self.router.stats["refused"] += 1
                LOG.warning("%s", exc)
            value, flags = CallError.from_exception(exc, self.router.name), FLAG_ERROR
        if msg.reply_to:
            self.router.send(Message.encoded(value, dst_id=msg.src_id, handle=msg.reply_to, flags=flags))


def call_service_async(router: Router, context_id: int, service: str, method: str, kwargs: Dict[str, Any]) -> Receiver:
    """Start ``service.method(**kwargs)`` in ``context_id``; the reply arrives on the receiver."""
    recv = Receiver(router, respondent=context_id)
    router.send(Message.encoded((service, method, kwargs), dst_id=context_id, handle=CALL_SERVICE, reply_to=recv.handle))
    return recv


def call_service(
    router: Router, context_id: int, service: str, method: str, kwargs: Dict[str, Any], timeout: Optional[float] = None
) -> Any:
    """Call ``service.method(**kwargs)`` in ``context_id`` and return its value.

    Raises ``CallError`` (a ``RefusedError`` there arrives as a ``CallError`` whose
    ``type_name`` ends in ``RefusedError``), ``StreamError``, ``TimeoutError``.
    """
    recv = call_service_async(router, context_id, service, method, kwargs)
    try:
        return recv.get(timeout).decode()
    finally:
        recv.close()
