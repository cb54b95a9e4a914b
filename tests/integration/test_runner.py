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

import os
import shutil
import statistics
import subprocess
import tempfile
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _runner
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError
from tests.integration import remote_helpers as rh
from tests.integration.runner_support import (
    MESSY,
    TARGET_PY,
    Runner,
    build_vanilla,
    comparable,
    decode,
    extra_context,
    full_args,
    module_path,
    run_vanilla,
    write_module,
)
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

# -- modules written for these tests ----------------------------------------------------
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
        unavailable("no Python %s here" % version)
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
