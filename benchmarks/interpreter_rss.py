"""Memory of a long-lived target interpreter: its RSS after N mixed tasks.

Usage (as root, after ``scripts/setup``)::

    .venv/bin/python -m benchmarks.interpreter_rss [--tasks 100,5000] [--out FILE]

Brings up a one-host testbed and runs one ``ansible-playbook`` under ns.mitogen
whose tasks mix the usual modules (command, shell, stat, file, copy with content,
lineinfile, slurp, ping, a WANT_JSON shell module and a module that patches the
standard library, starts nothing and leaves a logging handler: what the hygiene of
``_isolation`` undoes after every run). After the first task and after each count
of ``--tasks`` module runs, a task reads the target interpreter's ``VmRSS`` and
``VmHWM`` from ``/proc/<pid>/status`` (the interpreter is the parent of a command
the ``command`` module runs). Prints one line per checkpoint and, with ``--out``,
writes them as JSON. The numbers are per checkpoint: bounded memory shows as RSS
growing little between the last two.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from tests.testbed import Testbed

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
MIXED = 10  # module runs per round of the mixed tasks below

WANT_JSON_MODULE = """#!/bin/sh
# WANT_JSON
printf '{"changed": false, "size": %d}' "$(wc -c < "$1")"
"""

PATCHING_MODULE = """#!/usr/bin/python
import logging
import subprocess

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"n": {"type": "int"}})
    subprocess.Popen.nsm_marker = module.params["n"]
    logging.getLogger("nsm.rss").addHandler(logging.StreamHandler())
    module.exit_json(changed=False)


if __name__ == "__main__":
    main()
"""


def playbook(checkpoints: List[int]) -> str:
    """The play: a reading first, then rounds of mixed tasks up to each checkpoint, and a reading."""
    lines = [
        "- hosts: all",
        "  gather_facts: false",
        "  tasks:",
        "    - {file: {path: /tmp/nsm-rss, state: directory}}",
    ]
    lines += _reading(0)
    done = 0
    for count in checkpoints:
        rounds = max(1, (count - done) // MIXED)
        loop = "{{ range(%d) | list }}" % rounds
        for task in (
            "command: echo {{ item }}",
            "shell: echo {{ item }} | wc -c",
            "stat: {path: /etc/hostname}",
            "file: {path: /tmp/nsm-rss/f, state: touch}",
            "copy: {content: '{{ item }}', dest: /tmp/nsm-rss/c}",
            "lineinfile: {path: /tmp/nsm-rss/l, line: 'x', create: true}",
            "slurp: {src: /etc/hostname}",
            "ping:",
            "nsm_rss_want_json: {n: '{{ item }}'}",
            "nsm_rss_patching: {n: '{{ item }}'}",
        ):
            lines += ["    - %s" % task, '      loop: "%s"' % loop, "      loop_control: {label: '{{ item }}'}"]
        done += rounds * MIXED
        lines += _reading(done)
    return "\n".join(lines) + "\n"


def _reading(count: int) -> List[str]:
    return [
        "    - name: rss after %d module runs" % count,
        "      shell: awk '/^(VmRSS|VmHWM)/ {printf \"%s %s \", $1, $2}' /proc/$PPID/status",
        "      register: rss_%d" % count,
        "    - debug: {msg: 'NSM-RSS %d {{ rss_%d.stdout }}'}" % (count, count),
    ]


def run(checkpoints: List[int]) -> List[Dict[str, int]]:
    work = Path(tempfile.mkdtemp(prefix="nsm-rss-"))
    (work / "library").mkdir()
    (work / "library" / "nsm_rss_want_json").write_text(WANT_JSON_MODULE)
    (work / "library" / "nsm_rss_patching.py").write_text(PATCHING_MODULE)
    (work / "play.yml").write_text(playbook(checkpoints))
    with Testbed(hosts=1) as tb:
        host = tb["h1"]
        (work / "hosts").write_text(
            "h1 ansible_host=%s ansible_user=%s ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3 "
            "ansible_connection=ns.mitogen.ssh ansible_ssh_common_args='-o UserKnownHostsFile=%s'\n"
            % (host.address, tb.users.sudo.name, tb.key, tb.known_hosts)
        )
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
            ANSIBLE_HOME=str(work / "ansible-home"),
            ANSIBLE_STRATEGY="ns.mitogen.linear",
            ANSIBLE_NOCOLOR="1",
        )
        started = time.monotonic()
        out = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(work / "hosts"), str(work / "play.yml")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.monotonic() - started
        if os.environ.get("NSM_RSS_DEBUG"):
            print(out.stdout[-3000:])
    if out.returncode != 0:
        sys.exit("the run failed (rc %d):\n%s\n%s" % (out.returncode, out.stdout[-4000:], out.stderr[-2000:]))
    rows = []
    for m in re.finditer(r"NSM-RSS (\d+) VmHWM: (\d+) VmRSS: (\d+)", out.stdout):
        rows.append({"module_runs": int(m.group(1)), "hwm_kib": int(m.group(2)), "rss_kib": int(m.group(3))})
    print("%d checkpoints in %.1f s" % (len(rows), wall))
    for row in rows:
        print("after %(module_runs)5d module runs: RSS %(rss_kib)6d KiB (peak %(hwm_kib)6d KiB)" % row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--tasks", default="100,5000", help="checkpoints: module runs after which RSS is read")
    parser.add_argument("--out", help="write the checkpoints as JSON here")
    args = parser.parse_args()
    rows = run(sorted(int(n) for n in args.tasks.split(",")))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
