"""The in-process module runner on real interpreters, against real AnsiballZ runs.

Modules come from the installed ansible-core (ping, command, stat, file, slurp) or
are written here as source text. Requests are built the way the controller builds
them (ansible's own module encoder); results are decoded the way
``ActionBase._parse_returned_data`` decodes them. "Vanilla" is the same module and
arguments built by ansible's ``modify_module`` into a real AnsiballZ payload and
piped into the target's Python, as with pipelining.

The local target is ``/usr/bin/python3`` when it exists: a Python without ansible,
so every ``ansible.module_utils`` module must come from the controller.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, Dict, Iterator, Optional

import ansible
import pytest
from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder
from ansible.module_utils.json_utils import _filter_non_json_lines
from ansible.release import __version__ as ANSIBLE_VERSION

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner, api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError
from tests.integration import remote_helpers as rh
from tests.testbed.pythons import pythons

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

# -- modules written for these tests ----------------------------------------------------
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

PROBE = """
from ansible.module_utils import basic
parsed_at_start = basic._PARSED_MODULE_ARGS
from ansible.module_utils.basic import AnsibleModule
import logging, os, signal, sys, warnings

module = AnsibleModule(argument_spec=dict(), supports_check_mode=True)
umask = os.umask(0)
os.umask(umask)
module.exit_json(
    cwd=os.getcwd(),
    nsm_leak=os.environ.get("NSM_LEAK"),
    umask=umask,
    argv=sys.argv,
    path=sys.path,
    sigusr1=repr(signal.getsignal(signal.SIGUSR1)),
    excepthook_default=sys.excepthook is sys.__excepthook__,
    error_filter=any(f[0] == "error" for f in warnings.filters),
    root_handlers=len(logging.getLogger().handlers),
    patched=hasattr(AnsibleModule, "nsm_patched"),
    file_common=len(basic.FILE_COMMON_ARGUMENTS),
    parsed_at_start=parsed_at_start,
    helper_loaded="nsm_helper" in sys.modules,
    fake_loaded="nsm_fake" in sys.modules,
    name=__name__,
    file=__file__,
    basic_file=basic.__file__,
)
"""

EXIT3 = """
from ansible.module_utils.basic import AnsibleModule
import sys

module = AnsibleModule(argument_spec=dict())
print("half way")
sys.exit(3)
"""

JUNK = """
from ansible.module_utils.basic import AnsibleModule  # makes it a new-style module
import os, sys

print("this is not json")
sys.stdout.buffer.write(b"raw bytes \\xff\\n")
sys.stderr.write("some stderr\\n")
os.system("echo from a child process; echo child stderr >&2")
"""

OS_EXIT = """
from ansible.module_utils.basic import AnsibleModule
import atexit, os, sys

module = AnsibleModule(argument_spec=dict(marker=dict(type="str")))
atexit.register(lambda: open(module.params["marker"], "w").close())
print("before os._exit")
sys.stdout.flush()
os._exit(4)
"""

FORKS = """
from ansible.module_utils.basic import AnsibleModule
import os, sys

module = AnsibleModule(argument_spec=dict())
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    print("from the forked child")
    sys.exit(7)
_, status = os.waitpid(pid, 0)
module.exit_json(child_status=os.WEXITSTATUS(status), pid=os.getpid())
"""

ALARM = """
from ansible.module_utils.basic import AnsibleModule
import signal

module = AnsibleModule(argument_spec=dict())
signal.signal(signal.SIGALRM, lambda *a: None)
signal.alarm(1)
module.exit_json(msg="not reached")
"""

SPAWNS = """
from ansible.module_utils.basic import AnsibleModule
import os, subprocess

module = AnsibleModule(argument_spec=dict())


def umask_of(**kwargs):
    return module.run_command(["sh", "-c", "umask"], **kwargs)[1].strip()


own = subprocess.run(["sh", "-c", "umask"], preexec_fn=lambda: os.umask(0o011), stdout=subprocess.PIPE, check=True)
now = os.umask(0o022)
os.umask(now)
module.exit_json(default=umask_of(), given=umask_of(umask=0o027), zero=umask_of(umask=0),
                 own_preexec=own.stdout.decode().strip(), after="%04o" % now)
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


@pytest.fixture(scope="module")
def session():
    s = api.Session(allow_imports=ALLOW, connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def target(session):
    """One interpreter shared by every local test: state left by one test would show."""
    return session.local(python=TARGET_PY)


@pytest.fixture
def runner(target, tmp_path):
    return Runner(target, tmp_path)


# -- basics -----------------------------------------------------------------------------
def test_target_has_no_ansible_of_its_own(target):
    assert target.call(rh.native_ansible_paths) == [], "the target Python can import ansible natively"
    # (a local context started with the controller's own sys.executable would have
    # the venv's site-packages on sys.path; the importer still wins for allowed trees)


def test_ping(runner):
    reply = runner.run(module_path("ping"), {})
    assert reply["rc"] == 0 and reply["stderr"] == b""
    result = decode(reply["stdout"])
    assert result["ping"] == "pong"
    assert result["invocation"]["module_args"] == {"data": "pong"}
    origin = runner.ctx.call(rh.module_origin, "ansible.module_utils.basic")
    assert origin.startswith("master:"), origin  # served by the controller


def test_command_echo(runner):
    reply = runner.run(module_path("command"), {"_raw_params": "echo hi"})
    assert reply["rc"] == 0, reply
    result = decode(reply["stdout"])
    assert result["stdout"] == "hi" and result["rc"] == 0 and result["changed"] is True
    assert "failed" not in result


def test_command_failing(runner):
    reply = runner.run(module_path("command"), {"_raw_params": "sh -c 'echo oops >&2; exit 3'"})
    assert reply["rc"] == 1
    result = decode(reply["stdout"])
    assert result["failed"] is True and result["rc"] == 3 and result["stderr"] == "oops"
    assert result["msg"] == "non-zero return code"
    missing = decode(runner.run(module_path("command"), {"_raw_params": "/nonexistent/nsm"})["stdout"])
    assert missing["failed"] is True and missing["rc"] == 2 and missing["msg"] == "Error executing command."
    assert "No such file" in missing["exception"].event.chain.event.msg


TZ_MODULE = """
from ansible.module_utils.basic import AnsibleModule
import builtins, gettext, time

builtin = hasattr(builtins, "_")
gettext.install("nsm")  # adds builtins._
AnsibleModule(argument_spec=dict()).exit_json(zone=time.strftime("%Z"), builtin=builtin)
"""


def test_env_and_cwd_apply_to_one_run_only(runner, tmp_path):
    reply = runner.run(
        module_path("command"), {"_raw_params": "sh -c 'echo $NSM_TASK_VAR; pwd'"}, env={"NSM_TASK_VAR": "set"}, cwd=str(tmp_path)
    )
    assert decode(reply["stdout"])["stdout"].splitlines() == ["set", str(tmp_path)]
    reply = runner.run(module_path("command"), {"_raw_params": "sh -c 'echo ${NSM_TASK_VAR:-unset}; pwd'"})
    lines = decode(reply["stdout"])["stdout"].splitlines()
    assert lines[0] == "unset" and lines[1] != str(tmp_path)
    tz = write_module(tmp_path, "nsm_tz", TZ_MODULE)
    in_tz = decode(runner.run(tz, {}, name="ansible.legacy.nsm_tz", env={"TZ": "NSM+3"})["stdout"])
    after = decode(runner.run(tz, {}, name="ansible.legacy.nsm_tz")["stdout"])
    assert in_tz["zone"] == "NSM" and after["zone"] != "NSM" and not after["builtin"]
    bad = runner.run(module_path("ping"), {}, cwd=str(tmp_path / "missing"))
    assert bad["rc"] == 1 and b"cannot change to directory" in bad["stderr"] and bad["stdout"] == b""
    runner.ping_works()


# -- the same results as AnsiballZ ------------------------------------------------------
@pytest.mark.parametrize(
    "leaf, args",
    [
        ("ping", {}),
        ("ping", {"data": "crash"}),
        ("command", {"_raw_params": "echo hi"}),
        ("command", {"_raw_params": "false"}),
        ("command", {"argv": ["sh", "-c", "echo out; echo err >&2; exit 2"]}),
        ("stat", {"path": "{tmp}/stat-me"}),
        ("file", {"path": "{tmp}/stat-me", "state": "file"}),
        ("file", {"path": "{tmp}", "state": "directory"}),
        ("file", {"path": "{tmp}/absent", "state": "file"}),
        ("slurp", {"src": "{tmp}/stat-me"}),
    ],
)
def test_same_result_as_ansiballz(runner, tmp_path, leaf, args):
    (tmp_path / "stat-me").write_bytes(b"some \x00 content\n")
    os.utime(tmp_path / "stat-me", (1_000_000_000, 1_000_000_000))
    args = {k: (v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in args.items()}
    ours = runner.run(module_path(leaf), args)
    os.utime(tmp_path / "stat-me", (1_000_000_000, 1_000_000_000))
    theirs = runner.vanilla(module_path(leaf), args)
    assert ours["rc"] == theirs["rc"], (ours, theirs)
    assert ours["stderr"] == theirs["stderr"]
    assert comparable(decode(ours["stdout"])) == comparable(decode(theirs["stdout"]))


@pytest.mark.parametrize("text", [EXIT3, JUNK], ids=["exit3", "junk"])
def test_odd_modules_same_as_ansiballz(runner, tmp_path, text):
    path = write_module(tmp_path, "nsm_odd", text)
    ours = runner.run(path, {}, name="ansible.legacy.nsm_odd")
    theirs = runner.vanilla(path, {})
    assert ours["rc"] == theirs["rc"], (ours, theirs)
    assert ours["stderr"] == theirs["stderr"]
    if text is EXIT3:
        assert ours["rc"] == 3 and ours["stdout"] == theirs["stdout"] == b"half way\n"
    else:
        # The junk first, interleaved exactly as under AnsiballZ (which depends on the
        # target's buffering: PYTHONUNBUFFERED or not), then the loader's "did not
        # handle its own exit" error.
        junk = ours["stdout"].partition(b"{")[0]
        assert junk == theirs["stdout"].partition(b"{")[0]
        assert sorted(junk.splitlines()) == [b"from a child process", b"raw bytes \xff", b"this is not json"]
        assert sorted(ours["stderr"].splitlines()) == [b"child stderr", b"some stderr"]
        mine, vanilla = decode(ours["stdout"]), decode(theirs["stdout"])
        assert comparable(mine) == comparable(vanilla)
        assert mine["failed"] is True and "did not handle its own exit" in mine["exception"].event.msg
    runner.ping_works()


def test_run_command_children_as_under_ansiballz(runner, tmp_path):
    """run_command's umask-only preexec_fn is done by Popen itself here (no fork()): same children."""
    path = write_module(tmp_path, "nsm_spawns", SPAWNS)
    ours = runner.run(path, {}, name="ansible.legacy.nsm_spawns")
    theirs = runner.vanilla(path, {})
    assert (ours["rc"], ours["stderr"]) == (theirs["rc"], theirs["stderr"]) == (0, b"")
    mine = decode(ours["stdout"])
    assert comparable(mine) == comparable(decode(theirs["stdout"]))
    assert mine["given"] == "0027" and mine["own_preexec"] == "0011"
    assert mine["default"] == mine["zero"] == mine["after"]


def test_raising_module(runner):
    reply = runner.run(module_path("ping"), {"data": "crash"})
    assert reply["rc"] == 1
    result = decode(reply["stdout"])
    assert result["failed"] is True and result["exception"].event.msg == "boom"
    runner.ping_works()


# -- isolation --------------------------------------------------------------------------
def test_a_messy_module_leaves_nothing_behind(runner, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "nsm_helper.py").write_text("VALUE = 42\n")
    marker = tmp_path / "atexit-marker"
    messy = write_module(tmp_path, "nsm_messy", MESSY)
    probe = write_module(tmp_path, "nsm_probe", PROBE)

    runner.ping_works()  # module_utils loaded: later runs add no modules
    before = runner.ctx.call(rh.interpreter_state)
    first_probe = decode(runner.run(probe, {}, name="ansible.legacy.nsm_probe")["stdout"])

    reply = runner.run(messy, {"workdir": str(workdir), "marker": str(marker)}, name="ansible.legacy.nsm_messy")
    assert reply["rc"] == 1, reply
    result = decode(reply["stdout"])
    assert result["msg"] == "left a mess" and result["helper"] == 42
    assert result["handler_now"] is True  # the module saw its own handler
    assert result["argv"] == ["<ns.mitogen>/ansible/legacy/nsm_messy.py", "--leak"]
    assert [w.event.msg for w in result["warnings"]] == ["a warning from the messy module"]
    # The atexit handler ran at the end of that run, still in the module's directory.
    assert marker.read_text() == "atexit ran in %s\n" % workdir

    after = runner.ctx.call(rh.interpreter_state)
    assert after == before
    second_probe = decode(runner.run(probe, {}, name="ansible.legacy.nsm_probe")["stdout"])
    assert second_probe == first_probe
    assert "warnings" not in second_probe  # the messy module's warning stayed with it
    assert second_probe["nsm_leak"] is None and not second_probe["helper_loaded"] and not second_probe["fake_loaded"]
    assert second_probe["umask"] == before["umask"] and second_probe["cwd"] == before["cwd"]
    assert not second_probe["patched"] and second_probe["file_common"] > 0 and second_probe["parsed_at_start"] is None
    assert not second_probe["error_filter"] and second_probe["excepthook_default"]
    assert second_probe["sigusr1"] == repr(signal.SIG_DFL)
    assert second_probe["name"] == "__main__" and second_probe["file"] == "<ns.mitogen>/ansible/legacy/nsm_probe.py"
    assert "" not in second_probe["path"] and str(workdir) not in second_probe["path"]
    assert second_probe["argv"] == [second_probe["file"]]
    assert marker.read_text().count("atexit ran") == 1  # dropped after running once


MULTIPROCESSING = """
from ansible.module_utils.basic import AnsibleModule
import sys

was_loaded = "multiprocessing.util" in sys.modules
import multiprocessing.util  # registers its _exit_function with atexit on import

AnsibleModule(argument_spec=dict()).exit_json(was_loaded=was_loaded)
"""


def test_library_atexit_handlers_stay_with_the_process(session, tmp_path):
    """An import-time atexit handler of a module that stays cached is not run per run."""
    with extra_context(session, lambda s: s.local(python=TARGET_PY)) as ctx:
        runner = Runner(ctx, tmp_path)
        path = write_module(tmp_path, "nsm_mp", MULTIPROCESSING)
        callbacks = runner.ctx.call(rh.interpreter_state)["atexit"]
        result = decode(runner.run(path, {}, name="ansible.legacy.nsm_mp")["stdout"])
        assert result["was_loaded"] is False
        # Had it run, multiprocessing would believe the interpreter is exiting.
        assert runner.ctx.call(rh.module_attr, "multiprocessing.util", "_exiting") is False
        assert runner.ctx.call(rh.interpreter_state)["atexit"] == callbacks + 1


SIX_MOVES = """
from ansible.module_utils.basic import AnsibleModule
import ansible.module_utils.six.moves.http_cookiejar as cookiejar

AnsibleModule(argument_spec=dict()).exit_json(jar=cookiejar.CookieJar.__name__)
"""


def test_six_moves_after_six_was_cached(session, tmp_path):
    """six's import hook, installed while six is first imported, outlives the run (as six does).

    ansible-core 2.16's unarchive imports six.moves.http_cookiejar; with six cached by
    an earlier run and its finder dropped, the import failed.
    """
    with extra_context(session, lambda s: s.local(python=TARGET_PY)) as ctx:
        runner = Runner(ctx, tmp_path)
        assert "ansible.module_utils.six" not in ctx.call(rh.interpreter_state)["modules"]
        runner.ping_works()  # basic imports six, which appends its six.moves finder to sys.meta_path
        assert "ansible.module_utils.six" in ctx.call(rh.interpreter_state)["modules"]
        reply = runner.run(write_module(tmp_path, "nsm_six_moves", SIX_MOVES), {}, name="ansible.legacy.nsm_six_moves")
        assert reply["rc"] == 0, reply
        assert decode(reply["stdout"])["jar"] == "CookieJar"


def test_os_exit_ends_the_run_not_the_interpreter(runner, tmp_path):
    marker = tmp_path / "marker"
    path = write_module(tmp_path, "nsm_os_exit", OS_EXIT)
    pid = runner.ctx.call(os.getpid)
    reply = runner.run(path, {"marker": str(marker)}, name="ansible.legacy.nsm_os_exit")
    assert reply == {"rc": 4, "stdout": b"before os._exit\n", "stderr": b""}
    assert not marker.exists()  # os._exit skips atexit handlers
    theirs = runner.vanilla(path, {"marker": str(tmp_path / "vanilla-marker")})
    assert (theirs["rc"], theirs["stdout"]) == (4, b"before os._exit\n")
    assert runner.ctx.call(os.getpid) == pid
    runner.ping_works()


def test_forked_child_exits_without_returning(runner, tmp_path):
    path = write_module(tmp_path, "nsm_forks", FORKS)
    pid = runner.ctx.call(os.getpid)
    reply = runner.run(path, {}, name="ansible.legacy.nsm_forks")
    assert reply["rc"] == 0, reply
    assert reply["stdout"].startswith(b"from the forked child\n")
    result = decode(reply["stdout"])
    assert result["child_status"] == 7 and result["pid"] == pid
    runner.ping_works()


def test_alarm_fails_the_module_instead_of_killing_the_interpreter(runner, tmp_path):
    path = write_module(tmp_path, "nsm_alarm", ALARM)
    pid = runner.ctx.call(os.getpid)
    reply = runner.run(path, {}, name="ansible.legacy.nsm_alarm")
    assert reply["rc"] == 1
    assert "signal.alarm() cannot be used" in decode(reply["stdout"])["exception"].event.msg
    time.sleep(1.2)  # an alarm that had been set would have fired by now
    assert runner.ctx.call(os.getpid) == pid
    runner.ping_works()


# -- what the controller really allows, and ansible-core <= 2.18 ------------------------
COLLECTION_MODULE = """
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec=dict())
module.exit_json(name=__name__, package=__package__, fqn=_module_fqn)
"""

LEGACY = """
# from ansible.module_utils.basic import AnsibleModule  (never imported: 2.19 would need a profile)
import sys
print("legacy run", __name__, sys.argv[0], _module_fqn)
if "exit" in sys.argv[0]:
    sys.exit(5)
if "raise" in sys.argv[0]:
    raise KeyError("legacy boom")
"""


def test_parent_packages_not_on_the_allow_list(runner, tmp_path):
    """Only module_utils are served (so it is in production): runpy still finds the parents."""
    path = write_module(tmp_path, "demo", COLLECTION_MODULE)
    name = "ansible_collections.nsm.demo.plugins.modules.demo"  # no ansible_collections on ALLOW
    reply = runner.run(path, {}, name=name)
    assert reply["rc"] == 0, reply
    result = decode(reply["stdout"])
    assert (result["name"], result["package"], result["fqn"]) == ("__main__", name.rpartition(".")[0], name)
    modules = runner.ctx.call(rh.interpreter_state)["modules"]
    assert not [m for m in modules if m.startswith(("ansible.legacy", "ansible_collections.nsm.demo.plugins.modules"))]
    assert "ansible.module_utils.basic" in modules
    runner.ping_works()


@pytest.mark.parametrize("leaf", ["nsm_legacy", "nsm_legacy_exit", "nsm_legacy_raise"])
def test_pre_2_19_path(runner, tmp_path, leaf):
    """profile None: runpy as the <= 2.18 ANSIBALLZ_TEMPLATE did (no ansible-core that old here)."""
    path = write_module(tmp_path, leaf, LEGACY)
    request = runner.request(path, {}, name="ansible.legacy.%s" % leaf)
    request["profile"] = None
    reply = runner.ctx.call(_runner.run_module, request)
    first = b"legacy run __main__ <ns.mitogen>/ansible/legacy/%s.py ansible.legacy.%s\n" % (leaf.encode(), leaf.encode())
    assert reply["stdout"].startswith(first)
    if leaf == "nsm_legacy":
        assert reply["rc"] == 1 and reply["stdout"] == first + _runner.NO_EXIT_LEGACY.encode() + b"\n"
    elif leaf == "nsm_legacy_exit":
        assert reply == {"rc": 5, "stdout": first, "stderr": b""}
    else:
        assert reply["rc"] == 1 and reply["stdout"] == first
        assert reply["stderr"].startswith(b"Traceback") and reply["stderr"].endswith(b"KeyError: 'legacy boom'\n")
    runner.ping_works()


EXCEPTHOOK = """
import sys


def hook(exc_type, exc, tb):
    if "raise" in sys.argv[0]:
        raise ValueError("the hook fails too")
    print('{"failed": true, "msg": "hook saw %s"}' % exc_type.__name__)
    sys.exit(3)


sys.excepthook = hook
raise KeyError("uncaught")
"""


@pytest.mark.parametrize("leaf", ["nsm_hook_exit", "nsm_hook_raise"])
def test_pre_2_19_module_excepthook(runner, tmp_path, leaf):
    """An uncaught exception goes to the module's sys.excepthook, as when Python runs the script.

    2.16's file module reports its errors from a hook (``module.fail_json``); they came
    back as a traceback.
    """
    path = write_module(tmp_path, leaf, EXCEPTHOOK)
    request = runner.request(path, {}, name="ansible.legacy.%s" % leaf)
    request["profile"] = None
    reply = runner.ctx.call(_runner.run_module, request)
    script = subprocess.run([TARGET_PY, path], capture_output=True, timeout=60, check=False)
    assert (reply["rc"], reply["stdout"]) == (script.returncode, script.stdout)
    if leaf == "nsm_hook_exit":
        assert (reply["rc"], reply["stdout"], reply["stderr"]) == (3, b'{"failed": true, "msg": "hook saw KeyError"}\n', b"")
    else:
        for stderr in (reply["stderr"], script.stderr):
            assert stderr.startswith(b"Error in sys.excepthook:\nTraceback"), stderr
            assert b"ValueError: the hook fails too\n\nOriginal exception was:\nTraceback" in stderr
            assert stderr.endswith(b"KeyError: 'uncaught'\n")
    assert runner.ctx.call(rh.interpreter_state)["hooks"][0] is True  # sys.excepthook is put back
    runner.ping_works()


# -- the source cache -------------------------------------------------------------------
def test_source_cache(runner, tmp_path):
    path = module_path("ping")
    runner.run(path, {})
    reply = runner.run(path, {"data": "cached"}, send_source=False)
    assert decode(reply["stdout"])["ping"] == "cached"
    fresh = write_module(tmp_path, "nsm_never_sent", "from ansible.module_utils.basic import AnsibleModule\n# %f\n" % time.time())
    assert runner.ctx.call(_runner.run_module, runner.request(fresh, {}, send_source=False)) == {"need_source": True}
    bad = runner.request(path, {})
    bad["source_id"] = "0" * 40
    with pytest.raises(CallError, match="not the sha1"):
        runner.ctx.call(_runner.run_module, bad)
    with pytest.raises(CallError, match="bad module name"):
        runner.ctx.call(_runner.run_module, dict(bad, name="../etc"))
    runner.ping_works()


# -- timing -------------------------------------------------------------------------------
def _time_runs(runner: Runner, count: int, vanilla_count: int, label: str) -> None:
    path, args = module_path("command"), {"_raw_params": "echo hi"}
    runner.run(path, args)  # first run: loads module_utils through the importer
    request = runner.request(path, args, send_source=False)
    times = []
    for _n in range(count):
        started = time.perf_counter()
        reply = runner.ctx.call(_runner.run_module, request)
        times.append(time.perf_counter() - started)
        assert reply["rc"] == 0 and decode(reply["stdout"])["stdout"] == "hi"
    leaf = "command"
    payload = build_vanilla(path, leaf, full_args(args, leaf, runner.remote_tmp), runner.python, runner.local_tmp)
    vanilla = []
    for _n in range(vanilla_count):
        started = time.perf_counter()
        reply = run_vanilla(payload, runner.vanilla_argv)
        vanilla.append(time.perf_counter() - started)
        assert reply["rc"] == 0 and decode(reply["stdout"])["stdout"] == "hi"
    print(
        "\n%s: in-process command x%d: median %.1f ms, mean %.1f ms, max %.1f ms; "
        "AnsiballZ subprocess x%d: median %.1f ms (payload %d KiB)"
        % (
            label,
            count,
            statistics.median(times) * 1000,
            statistics.mean(times) * 1000,
            max(times) * 1000,
            vanilla_count,
            statistics.median(vanilla) * 1000,
            len(payload) // 1024,
        )
    )


def test_twenty_sequential_runs(runner):
    _time_runs(runner, 20, 5, "local %s" % TARGET_PY)


# -- other Pythons, and SSH -------------------------------------------------------------
@pytest.mark.parametrize("version", ["3.8", "3.13"])
def test_other_target_pythons(session, tmp_path, version):
    python = pythons().get(version)
    if python is None:
        pytest.skip("no Python %s here" % version)
    with extra_context(session, lambda s: s.local(python=python)) as ctx:
        runner = Runner(ctx, tmp_path, python=python, vanilla_argv=[python])
        runner.ping_works()
        for leaf, args in [("command", {"_raw_params": "echo hi"}), ("ping", {"data": "crash"})]:
            ours, theirs = runner.run(module_path(leaf), args), runner.vanilla(module_path(leaf), args)
            assert ours["rc"] == theirs["rc"]
            assert comparable(decode(ours["stdout"])) == comparable(decode(theirs["stdout"]))
        messy = write_module(tmp_path, "nsm_messy", MESSY)
        (tmp_path / "nsm_helper.py").write_text("VALUE = 1\n")
        before = runner.ctx.call(rh.interpreter_state)
        runner.run(messy, {"workdir": str(tmp_path), "marker": str(tmp_path / "m")}, name="ansible.legacy.nsm_messy")
        assert runner.ctx.call(rh.interpreter_state) == before


@pytest.mark.testbed
def test_over_ssh(session, testbed, tmp_path):
    host = testbed["h1"]
    user = testbed.users.key.name
    control = tempfile.mkdtemp(prefix="nsm-cm-", dir="/tmp")  # short: unix socket path limit
    ssh_argv = ["ssh", "-i", str(testbed.key), "-o", "UserKnownHostsFile=%s" % testbed.known_hosts]
    ssh_argv += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    # Like Ansible's ssh defaults: one master connection, reused by every run.
    ssh_argv += ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", "ControlPath=%s/%%C" % control]
    ssh_argv += ["%s@%s" % (user, host.address)]
    try:
        connect = {"identity_file": str(testbed.key), "known_hosts_file": str(testbed.known_hosts), "python": "/usr/bin/python3"}
        with extra_context(session, lambda s: s.ssh(host.address, username=user, **connect)) as ctx:
            runner = Runner(ctx, tmp_path, python="/usr/bin/python3", vanilla_argv=ssh_argv + ["/usr/bin/python3"])
            runner.remote_tmp = ctx.call(os.path.expanduser, "~/.ansible/tmp")
            assert ctx.call(rh.native_ansible_paths) == []
            for leaf, args in [("ping", {}), ("command", {"_raw_params": "echo hi"}), ("command", {"_raw_params": "false"})]:
                ours, theirs = runner.run(module_path(leaf), args), runner.vanilla(module_path(leaf), args)
                assert ours["rc"] == theirs["rc"], (ours, theirs)
                assert comparable(decode(ours["stdout"])) == comparable(decode(theirs["stdout"]))
            assert decode(runner.run(module_path("command"), {"_raw_params": "id -un"})["stdout"])["stdout"] == user

            # Block-buffered stdout here (no PYTHONUNBUFFERED in an ssh session): same interleaving.
            junk = write_module(tmp_path, "nsm_odd", JUNK)
            ours, theirs = runner.run(junk, {}, name="ansible.legacy.nsm_odd"), runner.vanilla(junk, {})
            assert (ours["rc"], ours["stderr"]) == (theirs["rc"], theirs["stderr"])
            assert ours["stdout"].partition(b"{")[0] == theirs["stdout"].partition(b"{")[0]
            if ctx.call(os.getenv, "PYTHONUNBUFFERED") is None:
                assert ours["stdout"].startswith(b"from a child process\nraw bytes \xff\nthis is not json\n")

            # Isolation holds over ssh too.
            workdir = ctx.call(os.path.expanduser, "~/nsm-runner-work")
            ctx.call(shutil.rmtree, workdir, ignore_errors=True)
            ctx.call(os.makedirs, workdir)
            ctx.call(rh.write_file, os.path.join(workdir, "nsm_helper.py"), "VALUE = 42\n")
            messy = write_module(tmp_path, "nsm_messy", MESSY)
            before = ctx.call(rh.interpreter_state)
            args = {"workdir": workdir, "marker": os.path.join(workdir, "m")}
            reply = runner.run(messy, args, name="ansible.legacy.nsm_messy")
            assert decode(reply["stdout"]).get("msg") == "left a mess", reply
            assert ctx.call(rh.interpreter_state) == before
            ctx.call(shutil.rmtree, workdir)

            _time_runs(runner, 20, 5, "ssh %s@h1" % user)
    finally:
        subprocess.run(ssh_argv[:-1] + ["-O", "exit", ssh_argv[-1]], capture_output=True, timeout=30, check=False)
        shutil.rmtree(control, ignore_errors=True)
