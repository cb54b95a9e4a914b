# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every ns.mitogen connection plugin shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  python_interpreter:
    description:
      - The Python interpreter that runs on the target (and stays alive between tasks).
      - When unset or V(auto), V(auto_silent) (or the deprecated V(auto_legacy) forms), it
        is discovered when the interpreter starts, in the same shell that starts it (no
        round trip per candidate) - the first of O(interpreter_python_fallback) that
        exists and runs a Python the running ansible-core's modules support (3.6+ under
        2.16, 3.7+ under 2.17, 3.8+ under 2.18 and 2.19, 3.9+ from 2.20 on). As with the
        built-in connections, the choice is returned as the
        C(discovered_interpreter_python) fact and, unless the mode ends in C(_silent), a
        warning names it.
      - A named interpreter older than that still starts (V(raw) works there), and the
        release's modules refuse it as they do under the built-in connections. Python
        older than 3.6 cannot run ns.mitogen and is refused when the connection starts,
        with a message naming the interpreter found.
    type: string
    vars:
      - name: ansible_python_interpreter
  interpreter_python_fallback:
    description:
      - Candidates for interpreter discovery, in order (names are looked up in C(PATH)).
      - Defaults to ansible-core's own C(INTERPRETER_PYTHON_FALLBACK) list.
    type: list
    elements: string
    env:
      - name: ANSIBLE_INTERPRETER_PYTHON_FALLBACK
    ini:
      - key: interpreter_python_fallback
        section: defaults
    vars:
      - name: ansible_interpreter_python_fallback
  timeout:
    description:
      - Seconds to wait while starting an interpreter, for each of its two phases -
        reaching a running Python on the target (the SSH connection and login, sudo and
        its prompts), then, counted afresh, starting the interpreter in it (sending the
        code, its start, the handshake). As with C(ansible.builtin.ssh), whose timeout
        bounds only its connection, the Python work after the login does not use up
        the allowance for the login. 1 or more (a smaller value fails the task with an
        error naming this option, before any connection is tried).
    type: integer
    default: 10
    env:
      - name: ANSIBLE_TIMEOUT
      - name: ANSIBLE_SSH_TIMEOUT
    ini:
      - key: timeout
        section: defaults
      - key: timeout
        section: ssh_connection
    vars:
      - name: ansible_ssh_timeout
    cli:
      - name: timeout
  max_interpreters:
    description:
      - At most this many become interpreters per target (per login interpreter; that
        one is not counted and never retired). Before one more starts on a full
        target, the least recently used idle one (no call in flight, no interpreter
        stacked on it) is shut down, and the new one starts once it has exited. A
        task that later uses the retired user again gets a new interpreter.
      - If every one of them has a call in flight, the new one starts anyway and the
        limit is exceeded, as the multiplexer's log (E(NS_MITOGEN_LOG_DIR)) says; waiting
        instead could wait for ever on a call that itself waits for this task.
      - As the original Mitogen's E(MITOGEN_MAX_INTERPRETERS) (its default, 20).
    type: integer
    default: 20
    env:
      - name: MITOGEN_MAX_INTERPRETERS
    vars:
      - name: mitogen_max_interpreters
  pool_size:
    description:
      - How many interpreters the run's multiplexer starts at once, and how many an
        intermediary (C(mitogen_via)) starts at once for the targets behind it; more
        wait for a start to end. The multiplexer uses the value of the latest
        connection that asked.
      - As the original Mitogen's E(MITOGEN_POOL_SIZE) (its default, 16).
      - Why 16 - a start mostly waits (the ssh handshake, the target's interpreter
        starting), so a few per controller core keep the controller busy; more at once
        only raise the peak of ssh processes, descriptors and memory. With 300 hosts and
        50 forks asking, 16 started at once, never more (the NSM_FULL_MATRIX=1 300-host
        test checks it).
    type: integer
    default: 16
    env:
      - name: MITOGEN_POOL_SIZE
    vars:
      - name: mitogen_pool_size
  cpu_count:
    description:
      - How many multiplexer processes serve the run. Each host is served by one of them,
        chosen by a stable hash of its inventory name, with all its interpreters (its login
        and each become user); a target behind an intermediary (C(mitogen_via)) is served
        by its own one, which starts its own interpreter on the intermediary.
      - As the original Mitogen's E(MITOGEN_CPU_COUNT), which named its number of
        multiplexer processes.
      - Why 1 - on 2 cores, 30 hosts x 20 tasks with 30 forks took 24.8 s and 21.1 s of
        controller CPU with one, 23.8 s and 20.7 s with two (medians of 2, within the
        noise), Ansible's own processes using most of the CPU; more may pay where many
        cores serve one run (C(python -m benchmarks.hosts --variants ns.mitogen,ns.mitogen_2mux)).
    type: integer
    default: 1
    env:
      - name: MITOGEN_CPU_COUNT
    vars:
      - name: mitogen_cpu_count
  hop_cache_size:
    description:
      - Mebibytes of copied files (C(copy), C(template), any C(put_file)) an
        intermediary (C(mitogen_via)) keeps for the targets behind it, so that a file
        copied to N of them crosses the links before it once. Kept by SHA-256 in a
        private (0700) temporary directory on the intermediary (on disk, not in memory,
        as a file may be large), least recently used first out, removed when the run ends.
        A larger file goes straight through, uncached. V(0) caches nothing.
    type: integer
    default: 512
    env:
      - name: NS_MITOGEN_HOP_CACHE_SIZE
    vars:
      - name: ns_mitogen_hop_cache_size
  fork_modules:
    description:
      - Modules that always run in a fresh process forked from the target's zygote (a clean
        process started beside each interpreter, which no module ran in), added to the
        built-in list (the dnf family, yum, ansible-freeipa's modules; each known to leave
        process-wide state behind that breaks a later run in the same interpreter).
      - Names are C(fnmatch) patterns on the module's full name (V(ansible.builtin.dnf),
        V(community.general.*)); a playbook's or role's C(library/) module by its bare name.
      - To fork every module of some tasks, set C(mitogen_task_isolation=fork) on them.
    type: list
    elements: string
    default: []
    env:
      - name: NS_MITOGEN_FORK_MODULES
    vars:
      - name: mitogen_fork_modules
  pipelining:
    description:
      - Kept for compatibility; ns.mitogen always runs modules through its own channel.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
    vars:
      - name: ansible_pipelining
notes:
  - Interpreters are owned by one multiplexer process per C(ansible-playbook) run, which
    exits with the run. Set E(NS_MITOGEN_MUX_RUSAGE) to a file path to have it append
    the CPU seconds it and its ssh/sudo children used when it exits (for benchmarks),
    with its O(pool_size) and the most starts it had at once.
  - Diagnostics - with C(-vvv) each step shows as an RPC line (C(RUN), C(EXEC), C(PUT),
    C(FETCH)) and a module run also shows the target interpreter's own log lines. Set
    E(NS_MITOGEN_LOG_DIR) to a directory for per-process debug logs on the controller -
    C(mux-<pid>.log) (the multiplexer, with every target's log records) and
    C(worker-<pid>.log) (each Ansible worker's requests with their durations).
    Nothing is written on targets.
  - Become - C(sudo), C(su) and C(doas) (C(community.general.doas)) natively, every other
    installed become plugin driven by its own command line and prompt checks (C(runas) and
    C(enable) are refused, saying why); one interpreter per become user, started once by
    the tool and reused. C(su) and C(doas)
    run on a private pty; the password is typed only when the tool asks, never on a command
    line. C(su) prompts are recognised in every language C(ansible.builtin.su) knows (or
    its C(prompt_l10n)), with or without a colon. I(become_flags) go to the tool when it
    starts the interpreter (su C(-)/C(-l)/C(-s SHELL)/C(-m) as su gives them; doas C(-n));
    flags that cannot apply to a persistent interpreter fail the task saying why (su
    C(-c)/C(-C)/C(-P), doas C(-s)/C(-L)/C(-C), a doas C(-u) other than I(become_user)).
  - C(sudo) runs on a private terminal (C(requiretty) works); the become password is typed
    there only at sudo's prompt, whatever prompt sudo shows. A wrong or missing password
    fails with vanilla's words; sudo itself failing is a module failure with its C(rc) and
    words in C(module_stderr). C(become_flags) - C(-H), C(-E), C(-i), C(-s) take effect as
    with vanilla; C(-S), C(-n) are how sudo gets the password; C(-p) is not used (warned);
    C(-u), C(-U), C(-b), C(-T) and flags that run no command are refused, saying why; other
    flags go to sudo.
  - A task's result travels back in one message of at most 64 MiB. A module or command
    whose output (stdout and stderr together) is over 63 MiB fails that task, with the
    sizes and the limit in its message, and is never held in the target's memory; the
    connection and its interpreters stay usable. Have such a task write its output to a
    file on the target and fetch that file.
  - M(ansible.builtin.fetch) with become streams the file from the become user's
    interpreter, with bounded memory (vanilla reads it whole with M(ansible.builtin.slurp));
    the result is the same. M(ansible.builtin.slurp) of a file whose base64 would be over
    the limit fails without running.
"""
