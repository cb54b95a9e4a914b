# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception tree of the core (private module).

Owns: every exception the core raises. The tree is shallow on purpose, so that a
caller needs to tell apart only a handful of cases:

- ``StreamError``: a connection to a context was lost or could not be made (the
  peer is gone; pending calls on that path fail at once with this error).
- ``InterpreterLost``: a ``StreamError`` saying that only the context's interpreter
  ended (killed, or exited) while the way to it (the login, the hop that started
  it) still works: the work it was doing failed, the host is still there.
- ``ConnectError``: a child could not be started (bad password, unreachable host,
  missing interpreter, ...). A ``StreamError`` subclass.
- ``ProtocolError``: bytes that do not follow the protocol. ``PeerProtocolError``
  when the peer sent them (that stream is dropped), plain ``ProtocolError`` when we
  were asked to send something that cannot be encoded (our own fault).
- ``CallError``: a remote call raised; carries the remote type name and traceback.
- ``RefusedError``: a peer asked for something the trust rules forbid.
- ``TimeoutError``: a deadline passed.

The errors that cross the wire (``StreamError`` and its subclasses, ``CallError``)
say so where they are defined, with ``@wire_error``: ``_codec`` decodes an object
only if it is one of those or a type registered with it (the allow-list), each
rebuilt by its own ``from_wire``. A new wire error needs no edit anywhere else.

Messages name the context (host/account) and hop involved, and suggest a fix where
one is known. Translation to Ansible's exceptions happens at the plugin boundary,
never here. This module must stay importable on Python 3.6 (lowered: ``_lower``) with the standard
library only, because it also runs on targets.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Dict, Optional, Type, TypeVar

if TYPE_CHECKING:  # for the annotations only: at run time its forward reference compiled "Error" in every process
    _E = TypeVar("_E", bound=Type["Error"])

#: name -> class of every error that crosses the wire (see ``wire_error``)
WIRE_ERRORS: Dict[str, type] = {}


def wire_error(cls: _E) -> _E:
    """Class decorator: let ``cls`` cross the wire under its own name.

    ``cls`` must have ``to_wire()``, returning plain encodable state, and a class
    method ``from_wire(state)`` that checks that state and raises
    ``PeerProtocolError`` on anything unexpected. Names are unique.
    """
    if not (callable(getattr(cls, "to_wire", None)) and callable(getattr(cls, "from_wire", None))):
        raise TypeError("%s needs to_wire() and from_wire() to cross the wire" % cls.__name__)
    if WIRE_ERRORS.setdefault(cls.__name__, cls) is not cls:
        raise ValueError("another wire error is named %s" % cls.__name__)
    return cls


class Error(Exception):
    """Base of every exception raised by the ns.mitogen core."""


@wire_error
class StreamError(Error):
    """A stream to a context was lost, or a route to it does not exist.

    Crosses the wire as itself, so a caller learns of a dead path as a
    ``StreamError`` even when a hop far away noticed it.
    """

    def to_wire(self) -> str:
        return str(self)

    @classmethod
    def from_wire(cls, state: object) -> "StreamError":
        if not isinstance(state, str):
            raise PeerProtocolError("malformed StreamError state")
        return cls(state)


@wire_error
class InterpreterLost(StreamError):
    """A context's interpreter ended while the hop that started it still works.

    The hop that saw it end knows how: ``status`` is its exit status as a shell
    reports it (128 + N when signal N killed it), the message says so in words. A
    caller may treat the loss as the failure of the work in progress, not of the
    connection (as a shell's exit status 137 fails a vanilla task).
    """

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)

    def to_wire(self) -> tuple:  # type: ignore[override]
        return (str(self), self.status)

    @classmethod
    def from_wire(cls, state: object) -> "InterpreterLost":  # type: ignore[override]
        if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], str) and isinstance(state[1], int)):
            raise PeerProtocolError("malformed InterpreterLost state")
        return cls(state[0], state[1])


@wire_error
class ConnectError(StreamError):
    """A child context could not be started.

    ``context`` names the context being started, ``stage`` says how far it got
    (``spawn``, ``authenticate``, ``interpreter``, ``handshake``), ``output`` holds
    what the child printed, for the reader of the error. ``returncode``: the exit
    status of a child program that ended while starting (as a shell gives it: 127
    for a program that does not exist), sent over the wire with the rest.
    """

    returncode: Optional[int] = None

    def __init__(self, context: str, reason: str, stage: str = "", output: str = "", hint: str = "") -> None:
        self.context = context
        self.reason = reason
        self.stage = stage
        self.output = output
        self.hint = hint
        parts = ["cannot connect to %s: %s" % (context, reason)]
        if output:
            parts.append("output: %s" % output.strip()[-2000:])
        if hint:
            parts.append("hint: %s" % hint)
        super().__init__("; ".join(parts))

    def to_wire(self) -> tuple:  # type: ignore[override]
        return (self.context, self.reason, self.stage, self.output, self.hint, self.returncode)

    @classmethod
    def from_wire(cls, state: object) -> "ConnectError":  # type: ignore[override]
        if not (
            isinstance(state, tuple)
            and len(state) == 6
            and all(isinstance(s, str) for s in state[:5])
            and (state[5] is None or (isinstance(state[5], int) and not isinstance(state[5], bool)))
        ):
            raise PeerProtocolError("malformed ConnectError state")
        exc = cls(*state[:5])
        exc.returncode = state[5]
        return exc


class ProtocolError(Error):
    """Data that does not follow the protocol (our own fault when raised on encode)."""


class PeerProtocolError(ProtocolError):
    """A peer sent bytes that break the protocol; its stream is dropped."""


class RefusedError(Error):
    """A request was refused by a trust rule (the rule is named in the message)."""


class TimeoutError(Error):  # noqa: A001 - deliberately ours, distinct from the builtin
    """A deadline passed before the awaited event arrived."""


@wire_error
class CallError(Error):
    """A function called in another context raised.

    ``type_name`` is the remote exception's qualified type name, ``remote_message`` its
    text, ``remote_traceback`` the formatted traceback as the remote side saw it.
    """

    def __init__(self, type_name: str, remote_message: str, remote_traceback: str = "", context: str = "") -> None:
        self.type_name = type_name
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.context = context
        where = " in %s" % context if context else ""
        text = "%s%s: %s" % (type_name, where, remote_message)
        if remote_traceback:
            text = "%s\n--- remote traceback ---\n%s" % (text, remote_traceback.rstrip())
        super().__init__(text)

    def to_wire(self) -> tuple:
        return (self.type_name, self.remote_message, self.remote_traceback, self.context)

    @classmethod
    def from_wire(cls, state: object) -> "CallError":
        if not (isinstance(state, tuple) and len(state) == 4 and all(isinstance(s, str) for s in state)):
            raise PeerProtocolError("malformed CallError state")
        return cls(*state)

    @classmethod
    def from_exception(cls, exc: BaseException, context: str = "") -> "CallError":
        import traceback

        if isinstance(exc, CallError):
            return exc
        tp = type(exc)
        name = tp.__name__ if tp.__module__ in ("builtins", "__builtin__") else "%s.%s" % (tp.__module__, tp.__qualname__)
        tb = "".join(traceback.format_exception(tp, exc, exc.__traceback__))
        return cls(name, str(exc), tb, context)

    def builtin_type(self) -> Optional[type]:
        """The builtin exception class of the remote error, if it was one."""
        tp = getattr(builtins, self.type_name, None)
        return tp if isinstance(tp, type) and issubclass(tp, BaseException) else None
