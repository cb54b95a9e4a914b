# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The original Mitogen's variables, accepted by every ns.mitogen connection (see plugin_utils/_original.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  mitogen_via:
    description:
      - Connection delegation, as in the original Mitogen - reach this host through another
        inventory host, named as V(host), V(user@host) (log in there as V(user)) or
        V(become_method:user@host) (through that become user's interpreter there, for example
        V(sudo:root@bastion)). Templated like any variable; the intermediary may have its own
        C(mitogen_via), to any depth.
      - The intermediary is connected with its own inventory variables (address, port, user,
        key, password, ssh arguments, become variables), as if it were the task's target, and
        this host's own connection (its ssh) then runs on the intermediary, so paths in this
        host's variables (a key file, a known_hosts file) are the intermediary's.
      - A cycle, an unknown host or a malformed value fails the task with an error naming the
        chain. C(-vvv) shows the chain of each task. See C(docs/via.md) in the collection.
    type: raw
    vars:
      - name: mitogen_via
  mitogen_task_isolation:
    description:
      - The original Mitogen's per-task isolation. V(fork) runs the task's modules each in a
        fresh process forked from the target's zygote (a clean process beside the
        interpreter, which no module ran in); the interpreter's pid is unchanged, nothing
        the module does to its process reaches a later task, and it may use what a reused
        interpreter cannot give it (C(signal.alarm)). It costs a fork and the module's
        imports afresh, 60-90 ms more a task on a small machine.
      - V(default) (or unset) runs modules in the persistent interpreter (isolated there,
        its process state put back after each run), except those on the always-fork
        list (see O(fork_modules)). Any other value is reported once and taken as
        V(default).
      - Set it on a task, block, play, host or group, as any variable.
    type: raw
    vars:
      - name: mitogen_task_isolation
  mitogen_mask_remote_name:
    description:
      - Accepted from the original Mitogen; has no effect (a warning says so, once per run).
    type: raw
    vars:
      - name: mitogen_mask_remote_name
  mitogen_kind:
    description:
      - The original Mitogen's setns container kind. Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_kind
  mitogen_docker_path:
    description:
      - The original Mitogen's path of C(docker), used by P(ns.mitogen.docker#connection); has no
        effect on other connections (a warning says so, once per run).
    type: raw
    vars:
      - name: mitogen_docker_path
  mitogen_podman_path:
    description:
      - The original Mitogen's path of C(podman), used by P(ns.mitogen.podman#connection); has no
        effect on other connections (a warning says so, once per run).
    type: raw
    vars:
      - name: mitogen_podman_path
  mitogen_buildah_path:
    description:
      - The original Mitogen's path of C(buildah), used by P(ns.mitogen.buildah#connection); has no
        effect on other connections (a warning says so, once per run).
    type: raw
    vars:
      - name: mitogen_buildah_path
  mitogen_kubectl_path:
    description:
      - The original Mitogen's path of C(kubectl). Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_kubectl_path
  mitogen_lxc_path:
    description:
      - The original Mitogen's path of C(lxc). Has no effect (a warning says so, once per run).
    type: raw
    vars:
      - name: mitogen_lxc_path
  mitogen_lxc_attach_path:
    description:
      - The original Mitogen's path of C(lxc-attach). Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_lxc_attach_path
  mitogen_lxc_info_path:
    description:
      - The original Mitogen's path of C(lxc-info). Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_lxc_info_path
  mitogen_machinectl_path:
    description:
      - The original Mitogen's path of C(machinectl). Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_machinectl_path
  mitogen_jexec_path:
    description:
      - The original Mitogen's path of C(jexec). Has no effect (a warning says so, once per
        run).
    type: raw
    vars:
      - name: mitogen_jexec_path
notes:
  - Variables of the original Mitogen that have no effect here yet are reported with one
    warning per run. Of its environment variables, E(MITOGEN_POOL_SIZE),
    E(MITOGEN_MAX_INTERPRETERS) and E(MITOGEN_CPU_COUNT) are honoured (options O(pool_size),
    O(max_interpreters) and O(cpu_count)); E(MITOGEN_PROFILING), E(MITOGEN_ROUTER_DEBUG),
    E(MITOGEN_DUMP_THREAD_STACKS), E(MITOGEN_LOG_LEVEL) and E(MITOGEN_SAVE_PIDS) are reported
    the same way, each with what to use instead.
"""
