# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.fetch on an ns.mitogen connection: ansible's fetch in one round trip (private).

Owns: ``run``, the fetch action's steps for an ns.mitogen connection with a POSIX
shell. Ansible's own action costs two round trips (the ``stat`` module, then the
transfer) and, under become, reads the whole file into a module's memory
(``slurp``). Here one call (``MitogenConnectionBase.fetch_if_changed``) stats the
file in the interpreter the task's commands run in (the become one if the task
becomes) and streams it, with bounded memory, unless the controller's copy
already has its SHA-1, or it is missing, a directory or unreadable.

Contract: the result is vanilla's, key for key and message for message, on
ansible-core 2.16 ... 2.21 (``_compat`` holds where they differ). Vanilla decides
differently with and without become (without: stat, then ``slurp`` for what the
stat could not checksum; with: ``slurp`` alone), so where the call found no
bytes to send, this follows the path vanilla takes:

- missing, or a directory, with ``fail_on_missing: false``, or a directory
  without become: the result vanilla composes, in that one round trip;
- anything else without become (a failed stat, a missing file that fails the
  task, a file not readable or not regular): ansible's own action, which runs
  its stat and ``slurp`` again (the task's result is its own);
- anything else with become: ansible's own ``slurp`` step, as vanilla runs it.

The destination path is computed before the call (it is where the bytes go); a
task whose destination vanilla refuses (directory traversal, an existing
directory) runs ansible's own action, which raises the same error. A ``~`` in
``src`` costs the round trip vanilla's expansion costs.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable, Dict, Optional

from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.utils.hashing import checksum, checksum_s, md5, secure_hash
from ansible.utils.path import is_subpath, makedirs_safe

from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat

MISSING = "the remote file does not exist, not transferring, ignored"
DIRECTORY = "remote file is a directory, fetch cannot work on directories"


def run(action: Any, task_vars: Dict[str, Any], result: Dict[str, Any], vanilla: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """The fetch task's result; ``result``: ``ActionBase.run``'s; ``vanilla()``: ansible's own action's."""
    try:
        if _compat.fetch_check_mode(action):
            raise AnsibleActionSkip("check mode not (yet) supported for this module")
        args = action._task.args
        source = args.get("src", None)
        original_dest = args.get("dest", None)
        flat = boolean(args.get("flat"), strict=False)
        fail_on_missing = boolean(args.get("fail_on_missing", True), strict=False)
        validate_checksum = boolean(args.get("validate_checksum", True), strict=False)
        msg = ""
        if not isinstance(source, str):
            msg = "Invalid type supplied for source option, it must be a string"
        if not isinstance(original_dest, str):
            msg = "Invalid type supplied for dest option, it must be a string"
        if source is None or original_dest is None:
            msg = "src and dest are required"
        if msg:
            raise AnsibleActionFail(msg)

        source = action._remote_expand_user(action._connection._shell.join_path(source))
        dest = _destination(action, task_vars, source, original_dest, flat)
        if dest is None:
            return vanilla()  # it raises the error, after its own stat, as it would
        local_checksum = checksum(dest)
        become = bool(action._connection.become)
        found = action._connection.fetch_if_changed(source, dest, local_checksum)

        if found.get("checksum"):
            return _fetched(result, found, source, dest, local_checksum, validate_checksum)
        if found.get("isdir") and not become:
            result.update(failed=True, changed=False, msg=DIRECTORY)
            if not fail_on_missing:
                result["msg"] += ", not transferring, ignored"
                del result["changed"]
                del result["failed"]
            return result
        if not fail_on_missing and (found.get("isdir") or found.get("exists") is False):
            result.update(file=source, changed=False, msg=DIRECTORY if found.get("isdir") else MISSING)
            return result
        if not become:
            return vanilla()
        return _slurped(action, task_vars, result, source, dest, fail_on_missing, validate_checksum)
    finally:
        action._remove_tmp_path(action._connection._shell.tmpdir)


def _destination(action: Any, task_vars: Dict[str, Any], source: str, original_dest: str, flat: bool) -> Optional[str]:
    """Where vanilla writes ``source`` on the controller; None where it refuses to (it says why)."""
    dest = original_dest
    if not is_subpath(dest, original_dest):
        return None
    if flat:
        if os.path.isdir(to_bytes(dest, errors="surrogate_or_strict")) and not dest.endswith(os.sep):
            return None
        if dest.endswith(os.sep):
            dest = os.path.join(dest, os.path.basename(source))
            if os.path.isdir(to_bytes(dest, errors="surrogate_or_strict")):
                return None
        if not dest.startswith("/"):
            dest = action._loader.path_dwim(dest)
    else:
        target_name = task_vars.get("inventory_hostname", action._play_context.remote_addr)
        dest = "%s/%s/%s" % (action._loader.path_dwim(dest), target_name, source)
    return os.path.normpath(dest)


def _fetched(
    result: Dict[str, Any], found: Dict[str, Any], source: str, dest: str, local_checksum: Any, validate: bool
) -> Dict[str, Any]:
    """The result once the file is here: sent now (changed), or already (unchanged)."""
    remote_checksum = found["checksum"]
    if not found.get("sent"):
        result.update(changed=False, md5sum=_md5(dest), file=source, dest=dest, checksum=local_checksum)
        return result
    new_checksum = secure_hash(dest)
    new_md5 = _md5(dest)
    if validate and new_checksum != remote_checksum:
        result.update(
            failed=True,
            md5sum=new_md5,
            msg="checksum mismatch",
            file=source,
            dest=dest,
            remote_md5sum=None,
            checksum=new_checksum,
            remote_checksum=remote_checksum,
        )
        return result
    result.update(
        changed=True, md5sum=new_md5, dest=dest, remote_md5sum=None, checksum=new_checksum, remote_checksum=remote_checksum
    )
    if _compat.FETCH_REPORTS_FILE:
        result["file"] = source
    return result


def _md5(path: str) -> Optional[str]:
    try:
        return str(md5(path))
    except ValueError:  # FIPS: vanilla reports None
        return None


def _slurped(
    action: Any,
    task_vars: Dict[str, Any],
    result: Dict[str, Any],
    source: str,
    dest: str,
    fail_on_missing: bool,
    validate: bool,
) -> Dict[str, Any]:
    """Vanilla's way under become where the call sent nothing: ``slurp`` (nothing large: no regular readable file)."""
    slurpres = action._execute_module(module_name="ansible.legacy.slurp", module_args=dict(src=source), task_vars=task_vars)
    if slurpres.get("failed"):
        if not fail_on_missing:
            result["file"] = source
            result["changed"] = False
        else:
            result.update(slurpres)
        if "not found" in slurpres.get("msg", ""):
            result["msg"] = MISSING
        elif slurpres.get("msg", "").lower().startswith("source is a directory"):
            result["msg"] = DIRECTORY
        return result
    remote_data = base64.b64decode(slurpres["content"])  # slurp's only encoding
    remote_checksum = checksum_s(remote_data)
    local_checksum = checksum(dest)
    if remote_checksum == local_checksum:
        return _fetched(result, {"checksum": remote_checksum, "sent": False}, source, dest, local_checksum, validate)
    makedirs_safe(os.path.dirname(dest))
    try:
        with open(to_bytes(dest, errors="surrogate_or_strict"), "wb") as f:
            f.write(remote_data)
    except OSError as ex:
        raise _compat.fetch_write_error(ex) from ex
    return _fetched(result, {"checksum": remote_checksum, "sent": True}, source, dest, local_checksum, validate)
