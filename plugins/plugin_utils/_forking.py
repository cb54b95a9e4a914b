# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which module runs go to a fork of the target's zygote instead of the interpreter (private).

Owns: ``ALWAYS_FORK``, the built-in list of modules that always run in a fork, each
with the reason, and ``fork_reason()``, the decision for one run. A fork starts from
the zygote beside the interpreter (``module_utils/mitogen/_zygote.py``), a process
no module ever ran in, so nothing a module leaves behind reaches a later one, and a
module may use what a reused interpreter cannot give it (``signal.alarm``, process-
wide singletons). It costs one fork and the module's imports afresh (60-90 ms more a task on
the 2-core test machine, from code the interpreter compiled once: ~3 ms in the interpreter).

- ``mitogen_task_isolation: fork`` (a task, block, play, host or group variable, as
  in the original Mitogen) forks every module run it applies to;
  ``mitogen_task_isolation: default`` (or unset) forks the modules on the list below
  and on the connection option ``fork_modules``; any other value is reported once
  and taken as ``default``.
- Names are matched (``fnmatch``) against the module's canonical name: ansible-core's
  own modules as ``ansible.builtin.X`` (also when a task says ``dnf`` or
  ``ansible.legacy.dnf``, or an action such as ``package`` picks it), collection
  modules as ``namespace.collection.X``, a playbook's or role's ``library/`` module
  as its bare name ``X``.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Dict, Iterable, Optional, Set

from ansible_collections.ns.mitogen.plugins.plugin_utils import _patterns

#: module (fnmatch pattern on its canonical name) -> why it always runs in a fork
ALWAYS_FORK: Dict[str, str] = {
    "ansible.builtin.dnf": (
        "dnf's Base loads its plugins once per process; a second run in the same interpreter fails "
        "('load_plugins() called twice', ansible/ansible#73348)"
    ),
    "ansible.builtin.dnf5": (
        "libdnf5's GlobalLogger is a process-wide singleton: creating it a second time in one process aborts "
        "('Only one GlobalLogger can exist at a time')"
    ),
    "ansible.builtin.yum": (
        "yum (ansible-core 2.16) keeps its configuration, plugins and rpm database locks in the yum library's process-wide state"
    ),
    "freeipa.ansible_freeipa.*": (
        "ansible-freeipa's modules bootstrap ipalib's process-wide API object, which may be bootstrapped only once per process"
    ),
}

#: The list above as one pattern, translated and compiled once per process when first
#: needed (our strategies compile it in the playbook's process, before any worker
#: forks): matching each name with ``fnmatch`` compiled its four patterns again in every
#: worker (~2 ms a task, profiled), and translating them as this module loaded cost
#: every worker ~450 Python calls.
_ALWAYS_FORK_RE = _patterns.LazyPattern(lambda: "|".join("(?:%s)" % fnmatch.translate(p) for p in ALWAYS_FORK))
#: What each pattern's matches start with (its text before any wildcard): a name that
#: starts with none of them (most, ``ansible.builtin.command``...) needs no pattern, and
#: a worker under a built-in strategy compiles none.
_PREFIXES = tuple(p[: min([p.index(c) for c in "*?[" if c in p] or [len(p)])] for p in ALWAYS_FORK)

FORK, DEFAULT = "fork", "default"
_WARNED: Set[str] = set()


def canonical_name(module_fqn: str) -> str:
    """The name a module is matched by: ``ansible.builtin.X``, ``ns.col.X`` or a ``library/`` module's ``X``."""
    parts = module_fqn.split(".")
    if parts[:2] == ["ansible", "modules"] and len(parts) > 2:
        return "ansible.builtin." + ".".join(parts[2:])
    if parts[0] == "ansible_collections" and len(parts) > 5 and parts[3:5] == ["plugins", "modules"]:
        return "%s.%s.%s" % (parts[1], parts[2], ".".join(parts[5:]))
    if parts[:2] == ["ansible", "legacy"] and len(parts) > 2:
        return ".".join(parts[2:])
    return module_fqn


def listed(name: str, extra: Iterable[str] = ()) -> Optional[str]:
    """Why module ``name`` (canonical) always forks, or None: the built-in list, then ``extra``."""
    if name.startswith(_PREFIXES) and _ALWAYS_FORK_RE.match(name):
        for pattern, reason in ALWAYS_FORK.items():
            if fnmatch.fnmatchcase(name, pattern):
                return reason
    for pattern in extra:
        if fnmatch.fnmatchcase(name, str(pattern)):
            return "listed in the fork_modules option (%s)" % pattern
    return None


def fork_reason(connection: Any, module_fqn: str, warn: Callable[[str], None]) -> Optional[str]:
    """Why this run of ``module_fqn`` goes to a fork, or None to run it in the interpreter."""
    setting = _option(connection, "mitogen_task_isolation")
    value = str(setting).strip().lower() if setting is not None else ""
    if value == FORK:
        return "mitogen_task_isolation is fork"
    if value not in ("", DEFAULT) and value not in _WARNED:
        _WARNED.add(value)
        warn(
            "ns.mitogen: mitogen_task_isolation=%r is not a value it takes (fork or default); the task runs as with "
            "default" % (setting,)
        )
    extra = _option(connection, "fork_modules") or ()
    if isinstance(extra, str):
        extra = [p.strip() for p in extra.split(",") if p.strip()]
    return listed(canonical_name(module_fqn), extra)


def _option(connection: Any, name: str) -> Any:
    try:
        return connection.get_option(name)
    except KeyError:
        return None
