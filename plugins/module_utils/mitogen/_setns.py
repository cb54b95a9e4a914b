# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``setns`` transport: into a container's namespaces directly, by its init pid (private module).

Owns: ``Setns`` and its first stage ``STAGE``; ``_methods`` names it.

How a child starts (the original product's ``setns`` method, without ``nsenter``):
``STAGE`` runs in the host's own Python (this process's ``sys.executable``: it runs
on the same machine), as root. It asks the container's engine for the pid of the
container's init process (``mitogen_kind``: ``docker``/``podman`` ``inspect -f
'{{.State.Pid}}'``, ``lxc-info -n NAME -pH``, ``machinectl show -p Leader NAME``),
opens that process's namespaces (user, when it differs from ours, then ipc, uts,
net, pid, mnt, cgroup, each only where the kernel has it and it differs), joins them
with ``setns(2)`` through ctypes, changes root to ``/proc/PID/root`` and directory to
the init process's cwd, then forks (joining a pid namespace takes effect for
children only). The child, killed with its parent (``PR_SET_PDEATHSIG``), becomes
the account asked for and runs the boot command (the container's Python, or
discovery by its ``/bin/sh``) with the container's basic environment (``PATH``,
``LANG``, ``LC_*``, ``TERM`` from its init process; ``HOME``, ``USER``,
``LOGNAME``, ``SHELL`` from its passwd). The parent holds no end of the stream,
waits, and ends as the child did (killing itself with the child's signal), so a
killed interpreter reads as such.

Failures before the interpreter starts come back as one ``NSM-SETNS <code>: <text>``
line on stderr, which ``explain`` turns into the reason and a hint: not root, the
engine missing, the container unknown or stopped, no such user there.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from ._transports import SpecError, Transport

KINDS = ("docker", "podman", "lxc", "machinectl")
# The tool each kind asks for the init pid, when no path is given.
DEFAULT_TOOLS = {"docker": "docker", "podman": "podman", "lxc": "lxc-info", "machinectl": "machinectl"}

STAGE = r"""
import ctypes, os, pwd, signal, subprocess, sys
def die(code, text):
    sys.stderr.write("NSM-SETNS %s: %s\n" % (code, text))
    sys.stderr.flush()
    os._exit(1)
kind, tool, name, user = sys.argv[1:5]
boot = sys.argv[5:]
if os.geteuid() != 0:
    die("notroot", "joining a container's namespaces needs root (running as uid %d)" % os.geteuid())
if kind in ("docker", "podman"):
    ask = [tool, "inspect", "-f", "{{.State.Pid}}", "--", name]
elif kind == "lxc":
    ask = [tool, "-n", name, "-pH"]
else:
    ask = [tool, "show", "-p", "Leader", "--", name]
try:
    p = subprocess.Popen(ask, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
except OSError as e:
    die("notool", "cannot run %s: %s" % (tool, e.strerror))
out, err = p.communicate()
out = out.decode("utf-8", "replace").strip()
err = " ".join(err.decode("utf-8", "replace").split())[:300]
if p.returncode != 0:
    die("unknown", "%s found no container %r (it said: %s)" % (tool, name, err or "nothing"))
text = out.rsplit("=", 1)[-1].strip()
if not text.isdigit() or int(text) == 0:
    die("stopped", "container %r is not running (%s gave no init pid%s)" % (name, tool, ": %r" % out if out else ""))
pid = int(text)
libc = ctypes.CDLL(None, use_errno=True)
fds = []
for ns in ("user", "ipc", "uts", "net", "pid", "mnt", "cgroup"):
    path = "/proc/%d/ns/%s" % (pid, ns)
    try:
        theirs = os.stat(path)
        ours = os.stat("/proc/self/ns/%s" % ns)
    except OSError:
        continue
    if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
        fds.append((ns, os.open(path, os.O_RDONLY)))
try:
    root = os.open("/proc/%d/root" % pid, os.O_RDONLY)
    cwd = os.readlink("/proc/%d/cwd" % pid)
    with open("/proc/%d/environ" % pid, "rb") as fp:
        environ = fp.read().split(b"\0")
except OSError as e:
    die("stopped", "container %r: its init process %d is gone (%s)" % (name, pid, e.strerror))
for ns, fd in fds:
    if libc.setns(fd, 0) != 0:
        die("setns", "setns(%s) into pid %d failed: %s" % (ns, pid, os.strerror(ctypes.get_errno())))
    os.close(fd)
os.fchdir(root)
os.chroot(".")
os.close(root)
env = {}
for item in environ:
    k, _, v = item.decode("utf-8", "replace").partition("=")
    if k in ("PATH", "LANG", "TERM") or k.startswith("LC_"):
        env[k] = v
env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
try:
    pw = pwd.getpwnam(user) if user else pwd.getpwuid(0)
except KeyError:
    die("nouser", "container %r has no user %r" % (name, user))
env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name, SHELL=pw.pw_shell or "/bin/sh")
child = os.fork()
if child == 0:
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (getppid() is 0 here: the parent is outside)
    if user:
        os.initgroups(pw.pw_name, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    for where in (cwd, pw.pw_dir, "/"):
        try:
            os.chdir(where)
            break
        except OSError:
            pass
    try:
        os.execvpe(boot[0], boot, env)
    except OSError as e:
        sys.stderr.write("%s: %s\n" % (boot[0], e.strerror))
        os._exit(127)
for fd in (0, 1):
    os.close(fd)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        _, status = os.waitpid(child, 0)
        break
    except InterruptedError:
        pass
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
"""

_FAILURE = re.compile(r"NSM-SETNS (\w+): (.*)")
_HINTS = {
    "notroot": "run the connection as root on the container's host (become: root on an intermediary, or a root controller)",
    "notool": "install the engine's tool, or set its path (mitogen_docker_path, mitogen_podman_path, "
    "mitogen_lxc_info_path, mitogen_machinectl_path)",
    "unknown": "check the container's name (ansible_host) and mitogen_kind",
    "stopped": "start the container",
    "nouser": "check ansible_user: the account must exist in the container",
    "setns": "the kernel refused to join a namespace: the connection needs CAP_SYS_ADMIN on the container's host",
}


class Setns(Transport):
    """Into container ``container`` (a name its engine knows) of kind ``kind``, by its init pid."""

    method = "setns"
    on_this_machine = False  # the container's Python, not ours
    local_link = True  # entered from here: a pipe
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "container": ((str,), None),
        "kind": ((str,), None),
        "username": ((str, type(None)), None),
        # the engine's tool: docker/podman, lxc-info or machinectl (default: by kind)
        "tool_path": ((str, type(None)), None),
        # the host's Python that runs the first stage (default: this process's)
        "host_python": ((str, type(None)), None),
    }

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec.get("container"):
            raise SpecError("setns: option 'container' is required")
        if self.spec["kind"] not in KINDS:
            raise SpecError("setns: option 'kind' must be one of %s, not %r" % (", ".join(KINDS), self.spec["kind"]))

    def describe(self) -> str:
        if self.spec.get("name"):
            return str(self.spec["name"])
        user = self.spec.get("username")
        return "setns:%s%s:%s" % (self.spec["kind"], "/" + user if user else "", self.spec["container"])

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        tool = s.get("tool_path") or DEFAULT_TOOLS[s["kind"]]
        host_python = s.get("host_python") or sys.executable
        return [host_python, "-c", STAGE, s["kind"], tool, s["container"], s.get("username") or ""] + boot

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        match = _FAILURE.search(output)
        if match:
            return match.group(2).strip(), _HINTS.get(match.group(1), "")
        return super().explain(output, returncode)
