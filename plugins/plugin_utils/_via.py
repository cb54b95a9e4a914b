# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``mitogen_via``: reaching a host through other inventory hosts (private).

Owns: parsing a ``mitogen_via`` value (``host``, ``user@host``,
``become_method:user@host``), finding the intermediary in the inventory, and building
its hops exactly as its own connection would build them if it were the task's target:
an ns.mitogen connection plugin of the intermediary's ``ansible_connection`` (ours for
``ssh``/``local``, the target's own connection where unset) gets the intermediary's own
variables (raw from ``hostvars``, templated with them as Ansible templates a target's
connection variables) and the task's keywords, and gives its login stack -- its own
``mitogen_via`` included, to any depth -- and, for ``become_method:user@host``, its
become hop. A stack with via is the intermediary's stack followed by the target's own
hops: the mux keys contexts by stack prefix, so every target behind one intermediary
shares the intermediary's interpreter, and the intermediary as a target itself uses
the same one.

Where the variables come from: the connection plugin only gets its own options;
ansible-core hands the task's variables (with ``hostvars``) to the connection's
``_resolve_option_variables`` (2.17+, also for ``meta: reset_connection``) and
``update_vars`` (every release): ``MitogenConnectionBase`` keeps them (``Source``).

Errors (``ViaError``, an ``AnsibleError``: the task fails, naming the chain): a
malformed value, an unknown host, a cycle (``a -> b -> a``), an intermediary whose
connection is not one of ours, an unknown become method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import ansible.constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _patterns
from ansible_collections.ns.mitogen.plugins.plugin_utils._names import redirect
from ansible_collections.ns.mitogen.plugins.plugin_utils._specs import ViaSource as Source
from ansible_collections.ns.mitogen.plugins.plugin_utils._specs import from_task_vars

__all__ = ["Source", "from_task_vars"]  # kept where they are needed every task (``_specs``)

if TYPE_CHECKING:
    from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase

FORMS = "host, user@host or become_method:user@host (an inventory host name)"
# become_method: a name or a collection's FQCN; user: no '@', ':' or space; host: an inventory name
display = Display()
_VIA = _patterns.LazyPattern(r"^(?:(?P<method>[A-Za-z_][\w.]*):(?=[^@:\s]+@))?(?:(?P<user>[^@:\s]+)@)?(?P<host>[^@:\s]+)$")


class ViaError(AnsibleError):
    """A ``mitogen_via`` that cannot be followed; the message names the chain."""


# Plain classes, not typing.NamedTuple: under a built-in strategy every worker defines
# them, and a NamedTuple compiles its string annotations (~0.4 ms each in a fork).
class Hop:
    """One parsed ``mitogen_via`` value."""

    __slots__ = ("host", "user", "method")

    def __init__(self, host: str, user: Optional[str] = None, method: Optional[str] = None) -> None:
        self.host, self.user, self.method = host, user, method

    def __repr__(self) -> str:
        return "Hop(%r, %r, %r)" % (self.host, self.user, self.method)


def hint(hint: str, names: List[str], target: str) -> str:
    """A connection error's ``hint`` for a host behind intermediaries ``names``: the chain added."""
    return "; ".join(h for h in (hint, "reached through mitogen_via %s -> %s" % (" -> ".join(names), target)) if h)


def no_python_message(host: str, names: List[str]) -> str:
    return (
        "ns.mitogen: no Python runs on %s, and a command without one is not run through mitogen_via (%s); "
        "use ansible.builtin.ssh with a ProxyJump (mitogen_disable: true) to bootstrap Python" % (host, " -> ".join(names))
    )


def parse(value: Any, chain: List[str]) -> Hop:
    """The ``Hop`` a ``mitogen_via`` value names; ``ViaError`` naming ``chain`` if it is malformed."""
    text = value.strip() if isinstance(value, str) else None
    match = _VIA.match(text) if text else None
    if match is None:
        raise ViaError("ns.mitogen: mitogen_via of %s is %r: expected %s" % (" -> ".join(chain), value, FORMS))
    return Hop(match.group("host"), match.group("user"), match.group("method"))


def stack(
    connection: "MitogenConnectionBase", value: Any, source: Optional[Source], chain: List[str]
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(The hops that reach the intermediary ``value`` names, the intermediaries as the hops take them).

    ``chain``: ``connection``'s host and the hosts behind it, the task's target first;
    the names are the ``mitogen_via`` values, outermost first (``bastion``, ``sudo:root@inner``).
    """
    hop = parse(value, chain)
    if hop.host in chain:
        raise ViaError("ns.mitogen: mitogen_via cycle: %s" % " -> ".join(chain + [hop.host]))
    named = " -> ".join(chain + [hop.host])
    hostvars = source.hostvars if source is not None else None
    if hostvars is None:
        raise ViaError(
            "ns.mitogen: mitogen_via %s: the inventory's variables (hostvars) are not available to the connection here" % named
        )
    if hop.host not in hostvars:
        raise ViaError("ns.mitogen: mitogen_via %s: no host %r in the inventory" % (named, hop.host))
    raw = hostvars.raw_get(hop.host)
    from ansible.template import Templar

    templar = Templar(loader=_compat.hostvars_loader(hostvars), variables=raw)
    via = _intermediary(connection, hop, raw, templar, named)
    via._via_source = Source(dict(raw, hostvars=hostvars))
    via._via_chain = chain + [hop.host]
    hops = via._login_stack()
    if hop.method:
        plugin = _become_plugin(hop, raw, templar, connection._task_keys, named)
        via.set_become_plugin(plugin)
        hops = hops + [via._become_spec()]
    return hops, via._via_names + [str(value).strip()]


def _intermediary(connection: "MitogenConnectionBase", hop: Hop, raw: Mapping[str, Any], templar: Any, named: str) -> Any:
    """An ns.mitogen connection plugin for the intermediary, its options set from its own variables."""
    from ansible.plugins.loader import connection_loader

    # its ansible_connection, else the task's connection keyword (as for a target), else the target's
    wanted = templar.template(raw["ansible_connection"]) if raw.get("ansible_connection") else None
    name = str(wanted or (connection._task_keys or {}).get("connection") or connection.transport)
    name = redirect(name) or name
    plugin = connection_loader.get(name, connection._play_context, ansible_playbook_pid=str(connection._playbook_pid))
    if not callable(getattr(plugin, "_via_stack", None)):  # not a MitogenConnectionBase
        raise ViaError(
            "ns.mitogen: mitogen_via %s: %s cannot be an intermediary: its connection %r is not an ns.mitogen one"
            % (named, hop.host, name)
        )
    if raw.get("mitogen_disable") is not None and boolean(templar.template(raw["mitogen_disable"]), strict=False):
        display.warning(
            "ns.mitogen: mitogen_disable has no effect on %s as an intermediary of mitogen_via (%s): "
            "a chain is ns.mitogen's; only tasks on %s itself keep its built-in connection" % (hop.host, named, hop.host)
        )
    load_name = _compat.plugin_load_name(plugin)
    keys = dict(connection._task_keys or {})
    # As TaskExecutor: the keyword timeout is the task's; the connection's is the play context's
    # (``meta: reset_connection`` hands the task's own over).
    keys["timeout"] = getattr(connection._play_context, "timeout", None) or keys.get("timeout")
    plugin.set_options(task_keys=keys, var_options=_option_vars("connection", load_name, raw, templar))
    if hop.user and not hop.method:  # user@host: the login user (become_method:user@host: the become user)
        plugin.set_option("remote_user", hop.user)
    return plugin


def _become_plugin(hop: Hop, raw: Mapping[str, Any], templar: Any, task_keys: Any, named: str) -> Any:
    """The become plugin ``hop.method``, with the intermediary's become variables and ``hop.user``."""
    from ansible.plugins.loader import become_loader

    plugin = become_loader.get(str(hop.method))
    if plugin is None:
        raise ViaError("ns.mitogen: mitogen_via %s: no become method %r" % (named, hop.method))
    keys = {k: v for k, v in dict(task_keys or {}).items() if k == "become_pass"}  # -K: every host's
    plugin.set_options(task_keys=keys, var_options=_option_vars("become", _compat.plugin_load_name(plugin), raw, templar))
    plugin.set_option("become_user", hop.user)
    return plugin


def _option_vars(kind: str, name: str, raw: Mapping[str, Any], templar: Any) -> Dict[str, Any]:
    """The plugin's option variables set for the intermediary, templated (as ansible-core's
    ``_resolve_option_variables`` does for a target)."""
    found: Dict[str, Any] = {"_extras": {}} if kind == "connection" else {}
    for var in C.config.get_plugin_vars(kind, name):
        if var in raw:
            try:
                found[var] = templar.template(raw[var])
            except _compat.OMITTED:
                pass
    return found
