# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test module: which process runs it (pid, parent, grandparent), and whether signal.alarm works there."""

from __future__ import annotations

import os
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule


def _parent_of(pid):
    with open("/proc/%d/stat" % pid) as fp:
        return int(fp.read().rsplit(")", 1)[1].split()[1])


def main():
    module = AnsibleModule(argument_spec=dict(alarm=dict(type="bool", default=False)))
    fired = []
    if module.params["alarm"]:
        signal.signal(signal.SIGALRM, lambda *_args: fired.append(True))
        signal.alarm(1)
        deadline = time.monotonic() + 3
        while not fired and time.monotonic() < deadline:
            time.sleep(0.05)
    ppid = os.getppid()
    module.exit_json(pid=os.getpid(), ppid=ppid, grandparent=_parent_of(ppid), executable=sys.executable, fired=bool(fired))


if __name__ == "__main__":
    main()
