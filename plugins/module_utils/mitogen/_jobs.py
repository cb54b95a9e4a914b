# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Async jobs, as ansible-core's ``async_wrapper`` runs them, in a child of the zygote (private).

Owns: ``run_job``, which the zygote's child (``_zygote``) runs for a request with
``async: N``. It does what ``async_wrapper`` does, with the same files and fields,
so that ``async_status`` (ours or vanilla's, in this run or a later one) reads them:

- the job leaves the interpreter's session (``setsid``: it outlives the interpreter,
  the multiplexer and the run), points stdio at ``/dev/null`` and sets umask 022;
- it creates ``$ANSIBLE_ASYNC_DIR`` (the task's environment, which ansible-core sets
  from the shell's ``async_dir``; default ``~/.ansible_async``, ``~`` being the home
  of the account the interpreter runs as) and writes ``{"started": true, "finished":
  false, "ansible_job_id": jid}`` to ``<dir>/<jid>``, the id being ``j<random>.<pid>``
  as vanilla's;
- it answers the interpreter with async_wrapper's start (``started``, ``finished``,
  ``ansible_job_id``, ``results_file``), or with the failure to create the directory;
- it forks the module's process (its own process group), which runs the module as
  the in-process runner does and replaces the job file with the module's JSON output
  (junk lines around it dropped, with a warning for trailing ones; ``stderr`` added
  when not empty), or with async_wrapper's failure (``cmd``, ``data``, ``stderr``,
  ``msg``) when the output holds no JSON object;
- it supervises that process: when the limit is over it kills the group (``SIGKILL``)
  and the job file says ``{"msg": "Timeout exceeded", "failed": true, "child_pid":
  pid}``, at the moment the controller's ansible-core's own async_wrapper would
  (``_supervise``); a job that ends sooner ends its supervisor at once.
- ``started``/``finished``/``failed`` are ``1``/``0`` up to ansible-core 2.18 and
  booleans from 2.19, as each release's async_wrapper writes them.

Job files are replaced atomically (``<jid>.tmp``, then rename).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import traceback
from typing import Any, Callable, Dict, List, Tuple

_exit = os._exit  # the real one: a run's hooks replace os._exit in the process that runs it


def _jwrite(path: str, info: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fp:
        fp.write(json.dumps(info))
    os.rename(tmp, path)


def _async_dir(env: Dict[str, Any]) -> str:
    path = str(env.get("ANSIBLE_ASYNC_DIR") or os.environ.get("ANSIBLE_ASYNC_DIR") or "~/.ansible_async")
    return os.path.expanduser(path)


def run_job(
    request: Dict[str, Any],
    limit: int,
    version: Tuple[int, int],
    halves_step: bool,
    run_here: Callable[[Dict[str, Any]], Dict[str, Any]],
    send_started: Callable[[Dict[str, Any]], None],
    close: Callable[[], None],
) -> None:
    """Run ``request`` as an async job of ``limit`` seconds (see the module docstring).

    In a fresh child of the zygote; as the ``async_wrapper`` of ansible-core
    ``version`` (the controller's), which looks at a job every half limit when that
    is under its step (``halves_step``, see ``_supervise``). ``run_here(request)``: the module's reply, run in
    this process; ``send_started(start)`` answers the interpreter with the job's start
    (or failure); ``close()`` lets go of the channel to it (in the supervisor, once
    the module's own process holds it).
    """
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    os.umask(0o022)
    env = dict(request.get("env") or {})
    os.environ.update({str(k): str(v) for k, v in env.items()})
    yes, no = (1, 0) if version < (2, 19) else (True, False)  # as that async_wrapper writes them
    jid = "j%d.%d" % (random.SystemRandom().randrange(999999999999), os.getpid())
    jobdir = _async_dir(env)
    job_path = os.path.join(jobdir, jid)
    try:
        os.makedirs(jobdir, exist_ok=True)
        _jwrite(job_path, {"started": yes, "finished": no, "ansible_job_id": jid})
    except Exception as exc:
        failed = {"failed": True, "msg": "could not create directory: %s - %s" % (jobdir, exc)}
        failed["exception"] = traceback.format_exc()
        send_started(failed)
        return
    send_started(
        {
            "failed": no,
            "started": yes,
            "finished": no,
            "ansible_job_id": jid,
            "results_file": job_path,
            "_ansible_suppress_tmpdir_delete": True,
        }
    )
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.setpgid(0, 0)
            _jwrite(job_path, _job_result(request, run_here(request), jid))
        except BaseException:
            status = 1
        _exit(status)
    close()
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # it did so itself, or is gone already
    _supervise(pid, limit, job_path, halves_step)


def _wait(pid: int, seconds: float) -> bool:
    """True once process ``pid`` has ended (reaped), waiting up to ``seconds`` for it."""
    deadline = time.monotonic() + seconds
    while True:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(0.1, left))


def _supervise(pid: int, limit: int, job_path: str, halves_step: bool) -> None:
    """Wait for the job's process; kill its group when the controller's async_wrapper would.

    async_wrapper looks every ``step`` seconds (5; half the limit when that is
    shorter, ``halves_step``: from 2.18, and in some later patch releases of older
    branches): without that, the job is killed at the first look after the limit
    plus one step (``async: 1`` runs for 10 s); with it, at the first look at or
    after the limit. The same looks are taken here, and a job that ends between two
    ends its supervisor at once (async_wrapper's sleeps on).
    """
    legacy = not halves_step
    step = 5.0
    if not legacy and limit and step >= limit:
        step = limit / 2.0
    remaining = float(limit)
    if _wait(pid, step):
        return
    while True:
        if legacy:
            if _wait(pid, step):
                return
        remaining -= step
        if remaining <= 0:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)
            _jwrite(job_path, {"msg": "Timeout exceeded", "failed": True, "child_pid": pid})
            return
        if not legacy and _wait(pid, step):
            return


def _job_result(request: Dict[str, Any], reply: Dict[str, Any], jid: str) -> Dict[str, Any]:
    """What async_wrapper writes for a module that printed ``reply``'s output."""
    outdata = bytes(reply.get("stdout") or b"").decode("utf-8", "surrogateescape")
    stderr = bytes(reply.get("stderr") or b"").decode("utf-8", "surrogateescape")
    try:
        filtered, warnings = _filter_non_json_lines(outdata)
        result = json.loads(filtered)
        if not isinstance(result, dict):
            raise ValueError("module output is not a JSON object")
        if warnings:
            found = result.get("warnings", [])
            result["warnings"] = (found if isinstance(found, list) else [found]) + warnings
        if stderr:
            result["stderr"] = stderr
        return result
    except Exception:
        return {
            "failed": True,
            "cmd": request.get("name"),
            "data": outdata,
            "stderr": stderr,
            "msg": traceback.format_exc(),
            "ansible_job_id": jid,
        }


def _filter_non_json_lines(data: str) -> Tuple[str, List[str]]:
    """The JSON object in ``data`` and warnings for trailing junk (as ansible's json_utils)."""
    lines = data.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("{")), None)
    if start is None:
        raise ValueError("No start of json char found")
    lines = lines[start:]
    end = next((i for i, line in enumerate(reversed(lines)) if line.strip().endswith("}")), None)
    if end is None:
        raise ValueError("No end of json char found")
    warnings = []
    if end > 0:
        warnings.append("Module invocation had junk after the JSON data: %s" % "\n".join(lines[len(lines) - end :]))
    return "\n".join(lines[: len(lines) - end]), warnings
