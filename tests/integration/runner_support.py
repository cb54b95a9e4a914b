"""What the in-process runner tests share: requests built and results decoded as
Ansible does, real AnsiballZ runs to compare with, and the fixtures (one Session
per test module, one local target interpreter).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, Iterator, Optional

import ansible
from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder
from ansible.module_utils.json_utils import _filter_non_json_lines
from ansible.release import __version__ as ANSIBLE_VERSION

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner, api

ALLOW = ["ansible.module_utils", "ansible.modules", "tests.integration.remote_helpers"]
MODULES = os.path.join(os.path.dirname(ansible.__file__), "modules")
PROFILE = "legacy"
TARGET_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
VOLATILE = {"start", "end", "delta"}  # command: timestamps of the run itself (and stat's ctime)

# Builds a real AnsiballZ payload in a separate process (the collection loader that
# modify_module needs is process-wide; keep it out of the test process).
BUILDER = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader
from ansible.executor.module_common import modify_module
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
spec = json.load(sys.stdin)
init_plugin_loader()
built = modify_module(module_name=spec["name"], module_path=spec["path"], module_args=spec["args"],
                      templar=Templar(loader=DataLoader()), task_vars={"ansible_python_interpreter": spec["python"]})
sys.stdout.buffer.write(built.b_module_data)
"""


# -- a module both test files run ------------------------------------------------------
MESSY = """
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import basic
import atexit, logging, os, signal, sys, warnings


def main():
    module = AnsibleModule(argument_spec=dict(workdir=dict(type="str"), marker=dict(type="str")))
    workdir, marker = module.params["workdir"], module.params["marker"]
    module.warn("a warning from the messy module")
    os.chdir(workdir)
    os.environ["NSM_LEAK"] = "1"
    os.umask(0o077)
    sys.path.append(workdir)
    import nsm_helper  # from the path this module added
    sys.argv.append("--leak")
    sys.excepthook = lambda *a: None
    warnings.simplefilter("error")
    logging.getLogger().addHandler(logging.NullHandler())

    def mark():
        with open(marker, "a") as fp:
            fp.write("atexit ran in %s\\n" % os.getcwd())

    atexit.register(mark)
    previous = signal.signal(signal.SIGUSR1, lambda *a: None)
    basic.AnsibleModule.nsm_patched = True
    basic.FILE_COMMON_ARGUMENTS = {}
    sys.modules["nsm_fake"] = type(sys)("nsm_fake")
    module.fail_json(
        msg="left a mess",
        previous_handler=repr(previous),
        handler_now=callable(signal.getsignal(signal.SIGUSR1)),
        helper=nsm_helper.VALUE,
        argv=sys.argv,
    )


main()
"""


# -- controller side ------------------------------------------------------------------
def module_path(name: str) -> str:
    return os.path.join(MODULES, name + ".py")


def write_module(tmp_path, leaf: str, text: str) -> str:
    path = tmp_path / ("%s.py" % leaf)
    path.write_text(textwrap.dedent(text))
    return str(path)


def full_args(args: Dict[str, Any], leaf: str, remote_tmp: str) -> Dict[str, Any]:
    """The module arguments with the internal ones ActionBase adds (2.19)."""
    return dict(
        args,
        _ansible_check_mode=False,
        _ansible_no_log=False,
        _ansible_debug=False,
        _ansible_diff=False,
        _ansible_verbosity=0,
        _ansible_version=ANSIBLE_VERSION,
        _ansible_module_name=leaf,
        _ansible_syslog_facility="LOG_USER",
        _ansible_selinux_special_fs=["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"],
        _ansible_shell_executable="/bin/sh",
        _ansible_keep_remote_files=False,
        _ansible_tmpdir=None,
        _ansible_remote_tmp=remote_tmp,
        _ansible_ignore_unknown_opts=False,
        _ansible_target_log_info=None,
        _ansible_tracebacks_for=[],
    )


def make_request(
    path: str,
    args: Dict[str, Any],
    *,
    name: Optional[str] = None,
    send_source: bool = True,
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[str] = None,
) -> Dict[str, Any]:
    with open(path, "rb") as fp:
        source = fp.read()
    leaf = os.path.basename(path)[:-3]
    return {
        "name": name or "ansible.modules.%s" % leaf,
        "source": source if send_source else None,
        "source_id": hashlib.sha1(source).hexdigest(),
        "args": json.dumps({"ANSIBLE_MODULE_ARGS": args}, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)),
        "profile": PROFILE,
        "env": env or {},
        "cwd": cwd,
    }


def decode(stdout: bytes) -> Dict[str, Any]:
    """What ``ActionBase._parse_returned_data`` does with a module's stdout."""
    text = stdout.decode("utf-8", "surrogateescape")
    filtered, _unused = _filter_non_json_lines(text, objects_only=True)
    return json.loads(filtered, cls=get_module_decoder(PROFILE, Direction.MODULE_TO_CONTROLLER))  # type: ignore[no-any-return]


def comparable(result: Dict[str, Any]) -> Dict[str, Any]:
    """A decoded result without what legitimately differs from run to run."""
    out = {k: v for k, v in result.items() if k not in VOLATILE}
    if isinstance(out.get("stat"), dict):  # the test's own utime() between the runs
        out["stat"] = {k: v for k, v in out["stat"].items() if k != "ctime"}
    exception = out.pop("exception", None)
    if exception is not None:  # tracebacks name different files (zip vs controller)
        out["exception_msg"] = exception.event.msg
        out["exception_has_traceback"] = exception.event.formatted_traceback is not None
    return out


def build_vanilla(path: str, leaf: str, args: Dict[str, Any], python: str, local_tmp: str) -> bytes:
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=local_tmp)
    spec = json.dumps({"path": path, "name": leaf, "args": args, "python": python}).encode()
    proc = subprocess.run([sys.executable, "-c", BUILDER], input=spec, capture_output=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def run_vanilla(payload: bytes, argv: Optional[list] = None, cwd: Optional[str] = None) -> Dict[str, Any]:
    proc = subprocess.run(argv or [TARGET_PY], input=payload, capture_output=True, cwd=cwd, timeout=120, check=False)
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


class Runner:
    """Runs modules both ways on one target and keeps the paths they need."""

    def __init__(self, ctx: api.Context, tmp_path, python: str = TARGET_PY, vanilla_argv: Optional[list] = None) -> None:
        self.ctx = ctx
        self.tmp_path = tmp_path
        self.python = python
        self.vanilla_argv = vanilla_argv
        self.remote_tmp = str(tmp_path / "remote_tmp")
        self.local_tmp = str(tmp_path / "local_tmp")

    def request(self, path: str, args: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        leaf = os.path.basename(path)[:-3]
        return make_request(path, full_args(args, leaf, self.remote_tmp), **kw)

    def run(self, path: str, args: Dict[str, Any], **kw: Any) -> Dict[str, Any]:
        reply = self.ctx.call(_runner.run_module, self.request(path, args, **kw))
        assert set(reply) == {"rc", "stdout", "stderr"}, reply
        return reply  # type: ignore[no-any-return]

    def vanilla(self, path: str, args: Dict[str, Any], cwd: Optional[str] = None) -> Dict[str, Any]:
        leaf = os.path.basename(path)[:-3]
        payload = build_vanilla(path, leaf, full_args(args, leaf, self.remote_tmp), self.python, self.local_tmp)
        return run_vanilla(payload, self.vanilla_argv, cwd)

    def ping_works(self) -> None:
        reply = self.run(module_path("ping"), {})
        assert reply["rc"] == 0 and decode(reply["stdout"])["ping"] == "pong", reply


# -- fixtures ---------------------------------------------------------------------------
# One Session for the whole module: closing any Session reaps every context this
# process started (_bootstrap.reap_all), so a second one would end the shared target.
@contextlib.contextmanager
def extra_context(session: api.Session, make: Any) -> Iterator[api.Context]:
    """A context of its own for one test, shut down at its end."""
    ctx = make(session)
    try:
        yield ctx
    finally:
        ctx.shutdown()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ctx.call(os.getpid, timeout=1)
            except (api.StreamError, api.TimeoutError):
                break
            time.sleep(0.05)
