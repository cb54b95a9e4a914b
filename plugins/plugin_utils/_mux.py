# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multiplexer: one long-lived process per ansible-playbook run (private).

Owns: every connection to every target of a run. Ansible forks a worker per task;
workers are short-lived, so they cannot keep interpreters alive. They ask the mux
instead, over a private UNIX socket, with the same framing and codec as the core:

- ``connect(stack)``: the context for a stack of hop specs (e.g. ``[ssh, sudo]``),
  started on first use, reused afterwards (the key is the stack itself);
- ``call(key + stack | context_id, ref, args, source_id, source_path)`` (see
  ``MuxClient.call``): run a function there; relayed from the broker thread when
  the context exists (the reply bytes go straight back), after starting it on the
  pool when it does not -- so a worker's first call is one round trip, not a
  ``connect`` and then a ``call``. The stack and the arguments come encoded by the
  worker and are relayed without being decoded (the stack only to start a
  context). A module run gets the module's source attached (as ``source=``) the
  first time its context runs that module (``_mux_sources``), so the target
  need not ask for it (``need_source``); so do the follow-ups of a ``RUN_THEN``
  (``then_sources``);
- ``push_file`` / ``fetch_file``: stream files between the controller and a context
  (to a context behind an intermediary, through that intermediary's file cache:
  ``_mux_hops``); ``fetch_if_changed``: fetch's one round trip (the remote file's
  stat, and its bytes unless the controller's copy has its SHA-1);
- ``send_ahead(host, source_id, source_path, module_name)`` (one way, no reply; from
  our strategy, ``MuxClient.send_only``): the module of ``host``'s next task, sent with
  what it imports to the context of the host's latest call (calls name their
  inventory ``host``) while the current task runs (``_mux_modules``);
- ``reset(stack)``: drop the contexts of a host (``meta: reset_connection``);
- ``stats()``: counters of what crossed the links to the first hops (for tests).

Stacks share their prefixes: the context for ``stack[:n]`` serves every stack that
begins with it, so targets behind one intermediary (``mitogen_via``) share it; the
contract (``login_hops`` among it) is in ``_mux_contexts``.

A request that may start a context also says how many of its hops are the
connection's own (``login_hops``) and the limit of interpreters stacked on that
login interpreter (``max_interpreters``): the mux retires the least recently used
idle one to keep it (``_recycler``).

Rules it keeps: the socket lives in a 0700 directory (its files: ``_muxfiles``) and
every peer's uid is checked (SO_PEERCRED); the mux exits when the ansible-playbook
process it serves is gone, and takes every interpreter with it; it is forked from
the process that starts it (the playbook's main process, or a worker under a
built-in strategy) and uses nothing of Ansible's, only the core.

This module holds what both sides share (the target functions' names, how a stack
is keyed, where the socket is); the mux itself is ``_mux_server`` (with ``start()``,
which forks it), a worker's side ``_mux_client``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Dict, List

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _muxfiles

MODULE_TREES = ["ansible.module_utils", "ansible_collections.*.*.plugins.module_utils"]
CORE = api.CORE_PACKAGE
RUNNER = CORE + "._runner"
RUN_MODULE = (RUNNER, "run_module")
RUN_THEN = (CORE + "._followup", "run_then")  # a module run, then the follow-up it selects (copy)
# What nearly every target asks for on its first module run (absent ones are skipped),
# sent along with the runner: basic, and what 2.19+ imports by a computed name.
RUNNER_COMPANIONS = [
    "ansible.module_utils.basic",
    "ansible.module_utils._internal._ansiballz._loader",
    "ansible.module_utils._internal._json._profiles._module_legacy_c2m",
    "ansible.module_utils._internal._json._profiles._module_legacy_m2c",
    RUN_THEN[0],  # copy's and template's one call (``_speculation``)
]
FIRST_RUN_MODULES = [RUNNER] + RUNNER_COMPANIONS


socket_dir = _muxfiles.socket_dir
socket_path = _muxfiles.socket_path


def mux_index(host: str, count: int) -> int:
    """Which of a run's ``count`` muxes serves ``host`` (an inventory name): a stable hash."""
    return zlib.crc32(host.encode("utf-8")) % count if count > 1 else 0


def stack_key(stack: List[Dict[str, Any]]) -> str:
    return json.dumps(stack, sort_keys=True, separators=(",", ":"))
