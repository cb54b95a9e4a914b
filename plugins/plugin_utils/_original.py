# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The original Mitogen's variables and environment variables, and what each does here (private).

Owns: the one list of every name the original product documents, so that none is read
by nothing. Each name is either

- ``HONOURED``: it works here (the entry says through which option);
- ``WARN``: it has no effect here yet; a warning, once per run, says what it did there
  and what to use here;
- ``REFUSE``: ignoring it could reach the wrong machine or do the wrong thing; the host's
  connection fails with the entry's words.

The capability that implements a name flips its entry to ``HONOURED``; the test that
walks this list (tests/integration/test_original_names.py) then expects the behaviour.
Warnings are worded without host names, so Ansible's display shows each once per run
(a worker's warning is shown by the main process, which drops repeats).

Never imports Ansible: the strategy and the connection plugins both use it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from ansible_collections.ns.mitogen.plugins.plugin_utils import _patterns

HONOURED, WARN, REFUSE = "honoured", "warn", "refuse"


class Name:
    """One name of the original product: its status here and the words for the user.

    A plain class, not typing.NamedTuple, which compiles its string annotations in every
    worker that defines it (see ``_via.Hop``).
    """

    __slots__ = ("status", "text")

    def __init__(self, status: str, text: str) -> None:
        self.status, self.text = status, text


_NO_READER = "no ns.mitogen connection reads it (set the executable option of the host's connection plugin instead)"

#: Inventory, play and task variables.
VARIABLES: Dict[str, Name] = {
    "mitogen_via": Name(HONOURED, "the ns.mitogen connections' option mitogen_via (docs/via.md)"),
    "mitogen_task_isolation": Name(HONOURED, "the ns.mitogen connections' option mitogen_task_isolation (fork, default)"),
    "mitogen_mask_remote_name": Name(
        WARN,
        "mitogen_mask_remote_name has no effect in ns.mitogen: target interpreters never carry the "
        "controller's host name or process id in their command line",
    ),
    "mitogen_ssh_compression": Name(HONOURED, "ns.mitogen.ssh option compression"),
    "mitogen_ssh_debug_level": Name(HONOURED, "ns.mitogen.ssh option ssh_debug_level"),
    "mitogen_ssh_keepalive_interval": Name(HONOURED, "ns.mitogen.ssh option keepalive_interval"),
    "mitogen_ssh_keepalive_count": Name(HONOURED, "ns.mitogen.ssh option keepalive_count"),
}
#: The original names each container connection reads (its own options: no "has no
#: effect" warning there, from the connection or the strategy); on any other they warn.
READ_BY: Dict[str, tuple] = {
    "ns.mitogen.podman": ("mitogen_podman_path",),
    "ns.mitogen.docker": ("mitogen_docker_path",),
    "ns.mitogen.buildah": ("mitogen_buildah_path",),
    "ns.mitogen.setns": (
        "mitogen_kind",
        "mitogen_docker_path",
        "mitogen_podman_path",
        "mitogen_lxc_info_path",
        "mitogen_machinectl_path",
    ),
    "ns.mitogen.machinectl": ("mitogen_machinectl_path",),
    "ns.mitogen.lxc": ("mitogen_lxc_attach_path", "mitogen_lxc_path"),
    "ns.mitogen.lxd": ("mitogen_lxc_path",),
    "ns.mitogen.jail": ("mitogen_jexec_path",),
    "ns.mitogen.kubectl": ("mitogen_kubectl_path",),
}
for _name in sorted({name for names in READ_BY.values() for name in names}):
    VARIABLES[_name] = Name(
        WARN,
        "%s has no effect on this connection: it is an option of %s (set ansible_connection to use it)"
        % (_name, " and ".join(sorted(c for c, names in READ_BY.items() if _name in names))),
    )

#: Environment variables of the controller.
ENVIRONMENT: Dict[str, Name] = {
    "MITOGEN_POOL_SIZE": Name(HONOURED, "the ns.mitogen connections' option pool_size"),
    "MITOGEN_MAX_INTERPRETERS": Name(HONOURED, "the ns.mitogen connections' option max_interpreters"),
    "MITOGEN_CPU_COUNT": Name(HONOURED, "the ns.mitogen connections' option cpu_count"),
    "MITOGEN_PROFILING": Name(
        WARN,
        "MITOGEN_PROFILING has no effect in ns.mitogen; NS_MITOGEN_MUX_RUSAGE=<file> records the multiplexer's "
        "CPU time, NS_MITOGEN_LOG_DIR=<dir> the duration of every request",
    ),
    "MITOGEN_ROUTER_DEBUG": Name(
        WARN,
        "MITOGEN_ROUTER_DEBUG has no effect in ns.mitogen; set NS_MITOGEN_LOG_DIR=<dir> for per-process debug "
        "logs on the controller, which include every target's log records (nothing is written on targets)",
    ),
    "MITOGEN_DUMP_THREAD_STACKS": Name(
        WARN,
        "MITOGEN_DUMP_THREAD_STACKS has no effect in ns.mitogen; NS_MITOGEN_LOG_DIR=<dir> logs every request with its duration",
    ),
    "MITOGEN_LOG_LEVEL": Name(
        WARN,
        "MITOGEN_LOG_LEVEL has no effect in ns.mitogen; -vvv shows each step and the target's own log lines, "
        "NS_MITOGEN_LOG_DIR=<dir> keeps debug logs",
    ),
    "MITOGEN_SAVE_PIDS": Name(
        WARN,
        "MITOGEN_SAVE_PIDS has no effect in ns.mitogen; NS_MITOGEN_LOG_DIR=<dir> names each log file after its process id",
    ),
}

_PATH_VARIABLE = _patterns.LazyPattern(r"^mitogen_\w+_path$")


class RefusedName(Exception):
    """A name whose ``REFUSE`` entry applies (its text is the message)."""


def _is_set(value: Any) -> bool:
    return value is not None and value != ""


def check(
    values: Mapping[str, Any], names: Iterable[str], warn: Callable[[str], None], entries: Optional[Dict[str, Name]] = None
) -> None:
    """Warn about each of ``names`` set in ``values`` that has no effect here; raise for a refused one.

    ``values``: a host's variables (or the environment, with ``entries=ENVIRONMENT``).
    ``warn`` is called with a message worded the same for every host. Raises
    ``RefusedName`` (after warning about the others) for a ``REFUSE`` entry.
    """
    table = VARIABLES if entries is None else entries
    refused: List[str] = []
    for name in names:
        if not _is_set(values.get(name)):
            continue
        entry = table.get(name)
        if entry is None and _PATH_VARIABLE.match(name):
            entry = Name(WARN, "%s has no effect: %s" % (name, _NO_READER))
        if entry is None or entry.status == HONOURED:
            continue
        if entry.status == REFUSE:
            refused.append(entry.text)
        else:
            warn("ns.mitogen: " + entry.text)
    if refused:
        raise RefusedName("ns.mitogen: " + "; ".join(refused))


def check_vars(task_vars: Mapping[str, Any], warn: Callable[[str], None], connection: Optional[str] = None) -> None:
    """``check`` over every original variable (and ``mitogen_*_path`` name) in ``task_vars``,
    except those ``connection`` (the host's, when known) reads (``READ_BY``)."""
    own = READ_BY.get(str(connection), ())
    names = [k for k in task_vars if isinstance(k, str) and k.startswith("mitogen_") and k not in own]
    check(task_vars, names, warn)


def check_environment(warn: Callable[[str], None], environ: Optional[Mapping[str, str]] = None) -> None:
    """``check`` over the original environment variables set for this controller process."""
    env = os.environ if environ is None else environ
    check(env, ENVIRONMENT, warn, ENVIRONMENT)
