"""The in-process runner: what a module changes in the interpreter does not reach the next.

Each test runs a module that changes process state (see ``_isolation``'s docstring
for what is and is not put back) on a real local interpreter, then checks the
state the next run sees. Helpers: ``runner_support``; fixtures: ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
import time

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner
from tests.integration import remote_helpers as rh
from tests.integration.runner_support import (
    MESSY,
    TARGET_PY,
    Runner,
    decode,
    extra_context,
    module_path,
    write_module,
)

# -- modules written for these tests ----------------------------------------------------
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


def test_a_clean_run_restores_nothing(runner):
    """Only what a module changed is put back: the runner's own per-run state is no change.

    (Every run restored the runner's own record of the active run, and logged it.)
    """
    runner.ping_works()
    request = dict(runner.request(module_path("ping"), {}), log=True)
    reply = runner.ctx.call(_runner.run_module, request)
    assert reply["rc"] == 0 and reply["log"], reply  # -vvv lines were captured
    assert [line for line in reply["log"] if "restored" in line] == []


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


REBINDS = """
from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule


class Incomparable:
    def __eq__(self, other):
        raise RuntimeError("cannot compare")

    __hash__ = object.__hash__


module = AnsibleModule(argument_spec=dict(step=dict(type="str")))
if module.params["step"] == "rebind":
    basic.heuristic_log_sanitize = lambda data, no_log_values=None: data  # a monkey-patch
    basic.FILE_COMMON_ARGUMENTS = Incomparable()  # a value an equality check cannot judge
    basic.PASS_VARS = dict(basic.PASS_VARS)  # an equal copy
module.exit_json(
    patched=basic.heuristic_log_sanitize.__name__ == "<lambda>",
    comparable=not isinstance(basic.FILE_COMMON_ARGUMENTS, Incomparable),
    pass_vars_id=id(basic.PASS_VARS),
)
"""


def test_rebound_module_utils_names_are_judged_by_equality(runner, tmp_path):
    """Names are checked with dict equality (in C, short-cut on identity): a patched
    function and a value whose __eq__ raises are put back; an equal copy may stay."""
    path = write_module(tmp_path, "nsm_rebinds", REBINDS)
    before = decode(runner.run(path, {"step": "look"}, name="ansible.legacy.nsm_rebinds")["stdout"])
    during = decode(runner.run(path, {"step": "rebind"}, name="ansible.legacy.nsm_rebinds")["stdout"])
    after = decode(runner.run(path, {"step": "look"}, name="ansible.legacy.nsm_rebinds")["stdout"])
    assert not before["patched"] and before["comparable"]
    assert during["patched"] and not during["comparable"] and during["pass_vars_id"] != before["pass_vars_id"]
    assert not after["patched"] and after["comparable"], after
    runner.ping_works()
