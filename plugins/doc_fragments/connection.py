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
      - When unset or V(auto), C(/usr/bin/python3) is used until interpreter discovery
        lands in ns.mitogen.
    type: string
    vars:
      - name: ansible_python_interpreter
  timeout:
    description:
      - Seconds to wait while starting an interpreter (the SSH connection, sudo, and the
        interpreter's handshake each count against it).
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
    exits with the run. Set E(NS_MITOGEN_MUX_LOG) to a file path to log its activity,
    and E(NS_MITOGEN_MUX_RUSAGE) to a file path to have it append the CPU seconds it
    and its ssh/sudo children used when it exits (for benchmarks).
  - Become methods supported so far - C(sudo) (one interpreter per become user, reused).
"""
