# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the async_status action (plugins/action/async_status.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: async_status
short_description: Obtain the status of an async task
description:
  - Ansible's own C(ansible.builtin.async_status) under the collection's name; the status of an
    async job (O(mode=status)), or removal of its job file (O(mode=cleanup)).
  - Async tasks on ns.mitogen connections run as jobs forked from a clean process beside the
    target's interpreter (never from the interpreter earlier modules ran in) and keep vanilla's
    job files in E(ANSIBLE_ASYNC_DIR) (default C(~/.ansible_async), C(~) being the home of the
    account the task runs as), so this action, C(ansible.builtin.async_status), and a later
    C(ansible-playbook) run with or without ns.mitogen all read the same jobs. A job outlives
    the run that started it.
version_added: "0.1.0"
author: ns.mitogen contributors (@ns-mitogen)
options:
  jid:
    description: The C(ansible_job_id) returned by the task that started the job.
    type: str
    required: true
  mode:
    description: V(status) reads the job's state; V(cleanup) removes its job file.
    type: str
    choices: [cleanup, status]
    default: status
attributes:
  check_mode:
    support: full
    description: Reads the job file in check mode too.
  diff_mode:
    support: none
    description: Nothing to compare.
  platform:
    support: full
    platforms: posix
    description: Any host.
seealso:
  - module: ansible.builtin.async_status
"""

EXAMPLES = r"""
- name: Start a long job
  ansible.builtin.command: /usr/local/bin/backup
  async: 3600
  poll: 0
  register: backup

- name: Wait for it
  ns.mitogen.async_status:
    jid: "{{ backup.ansible_job_id }}"
  register: job
  until: job.finished
  retries: 360
  delay: 10

- name: Remove its job file
  ns.mitogen.async_status:
    jid: "{{ backup.ansible_job_id }}"
    mode: cleanup
"""

RETURN = r"""
ansible_job_id:
  description: The job's identifier.
  returned: success
  type: str
finished:
  description: Whether the job has finished.
  returned: success
  type: bool
started:
  description: Whether the job has started.
  returned: success
  type: bool
results_file:
  description: The job file on the target.
  returned: success
  type: str
erased:
  description: The job file removed (O(mode=cleanup)).
  returned: success
  type: str
"""
