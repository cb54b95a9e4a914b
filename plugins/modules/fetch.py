# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the fetch action (plugins/action/fetch.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fetch
short_description: Fetch files from remote nodes, streamed
description:
  - Ansible's own C(ansible.builtin.fetch) under the collection's name, with the same options,
    results and keys; the file is stored under O(dest) in a tree organised by host name, unless O(flat).
  - On an ns.mitogen connection the file streams from the interpreter the task runs in, with
    bounded memory on the target, on every intermediary and here, also with C(become), where
    C(ansible.builtin.fetch) on other connections reads it whole with C(ansible.builtin.slurp).
    C(ansible.builtin.fetch) itself gets the same streaming on ns.mitogen connections.
  - At C(-v), a transfer of 64 MiB or more shows a line every few seconds (bytes done and total,
    rate, time left); E(NS_MITOGEN_PROGRESS_INTERVAL) sets the seconds between lines (default 5).
version_added: "0.1.0"
author: ns.mitogen contributors (@ns-mitogen)
options:
  src:
    description: The file on the remote system to fetch (a file, not a directory).
    type: str
    required: true
  dest:
    description:
      - A directory to save the file into, as C(<dest>/<inventory hostname>/<src>); with O(flat),
        the file itself (or, ending in C(/), the directory to put it in under its base name).
    type: str
    required: true
  fail_on_missing:
    description: Fail the task when the remote file cannot be read for any reason.
    type: bool
    default: true
  validate_checksum:
    description: Verify that the source and destination checksums match after the file is fetched.
    type: bool
    default: true
  flat:
    description: Store the file at O(dest) itself, not under a tree named after the host.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would be fetched without writing it.
  diff_mode:
    support: full
    description: As C(ansible.builtin.fetch).
  platform:
    support: full
    platforms: posix
    description: Any host an ns.mitogen connection reaches; other connections get ansible's own fetch.
seealso:
  - module: ansible.builtin.fetch
"""

EXAMPLES = r"""
- name: Fetch a large log as root, streamed
  ns.mitogen.fetch:
    src: /var/log/big.log
    dest: /srv/backups
  become: true
"""

RETURN = r"""
dest:
  description: Where the file was stored here.
  returned: success
  type: str
checksum:
  description: The SHA-1 checksum of the file.
  returned: success
  type: str
md5sum:
  description: The MD5 checksum of the file, where this controller can compute one.
  returned: changed
  type: str
remote_checksum:
  description: The SHA-1 checksum of the remote file.
  returned: changed
  type: str
remote_md5sum:
  description: Always null (kept for compatibility).
  returned: changed
  type: str
"""
