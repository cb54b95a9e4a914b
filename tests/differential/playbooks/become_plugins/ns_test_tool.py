# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A site's own become plugin, shipped only with the tests (as pbrun or dzdo would be).

It has its own prompt (matched by its own ``check_password_prompt``), its own
words for a wrong and a missing password, and its own command line: sudo reading
the password on stdin (``-S``) with the plugin's prompt, as ``sudosu`` runs it.
ns.mitogen must drive it through these, unchanged.
"""

from __future__ import annotations

import re
import shlex

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.become import BecomeBase

DOCUMENTATION = """
    name: ns_test_tool
    short_description: A test-only become plugin with its own prompt and words
    description:
        - Runs commands as another user through C(sudo -S), with its own prompt.
    author: ns.mitogen contributors
    options:
        become_user:
            description: User to become.
            default: root
            vars:
              - name: ansible_become_user
            keyword:
              - name: become_user
        become_exe:
            description: The tool.
            default: sudo
            vars:
              - name: ansible_become_exe
            keyword:
              - name: become_exe
        become_flags:
            description: Options to pass to the tool.
            default: -H
            vars:
              - name: ansible_become_flags
            keyword:
              - name: become_flags
        become_pass:
            description: Password for the tool.
            required: false
            vars:
              - name: ansible_become_password
              - name: ansible_become_pass
"""


class BecomeModule(BecomeBase):
    name = "ns_test_tool"

    # As su, ksu or machinectl: vanilla then writes temp files (see become_custom.yml);
    # ns.mitogen never does.
    pipelining = False

    fail = ("Sorry, try again.",)
    missing = ("a password is required",)

    def check_password_prompt(self, b_output):
        return bool(re.search(r"ns-tool challenge for \S+ \(\w+\) >", to_text(b_output)))

    def build_become_command(self, cmd, shell):
        super().build_become_command(cmd, shell)
        if not cmd:
            return cmd
        user = self.get_option("become_user") or "root"
        flags = self.get_option("become_flags") or ""
        if self.get_option("become_pass"):
            self.prompt = "ns-tool challenge for %s (%s) >" % (user, self._id[:6])
            auth = "-S -p %s" % shlex.quote(self.prompt + " ")
        else:
            auth = "-n"
        exe = self.get_option("become_exe") or "sudo"
        return "%s %s %s -u %s %s" % (exe, flags, auth, shlex.quote(user), self._build_success_command(cmd, shell))
