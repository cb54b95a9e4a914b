# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible's fetch action, streamed from the become interpreter (private).

Owns: telling whether a class (``is_builtin_fetch_action``) or the caller
(``called_by_fetch_action``) is ansible-core's own fetch action (``ActionModule.run``
in ``ansible/plugins/action/fetch.py``, the one class behind ``fetch``,
``ansible.builtin.fetch`` and ``ansible.legacy.fetch``).

On an ns.mitogen connection that action is replaced by ``ns.mitogen.fetch``
(``_action.fetch_action``), which needs none of what follows. What follows is for
where it still runs on one: a host with ``mitogen_disable: true`` whose connection
is ns.mitogen's by name.

Why: with become, that action (2.16 ... 2.21 alike: ``if not self._connection.become``)
skips the stat and reads the file with the ``slurp`` module: the whole file, base64
encoded, in the module's memory. In a persistent interpreter that is GBs for a large
file, and a result no frame can carry. An ns.mitogen connection can instead stream
the file from the become interpreter, with bounded memory at every hop.

How: to that one action, and to no other caller, an ns.mitogen connection's become
plugin reads as false (``_become.BecomeProxy.__bool__``). So the action stats the file (the
stat module still runs in the become interpreter: the connection decides that, not
the action), takes the real checksum from it and calls ``fetch_file``, which, called
by that action, streams from the interpreter the task's commands run in (the become
one if the task becomes). The rest of the action sees the become plugin as it is:
``~`` in ``src`` expands to the become user's home, as vanilla's does with become.
Everything else is ansible's own code: the destination path, the checksum check, the
``md5sum``/``checksum``/``changed`` keys, ``fail_on_missing``, ``validate_checksum``.
Where the stat finds no file, or one it cannot read, the action falls back to
``slurp`` as vanilla's does (then without any file content to read).

Why the caller's frame, not a patch of the action's class: ansible loads that one
file as several module objects (``ansible.plugins.action.fetch`` for ``fetch``,
``ansible_collections.ansible.builtin.plugins.action.fetch`` for the FQCN, in the
controller or a worker, before or after any connection plugin is imported), so no
class attribute is the action's for sure; its code's file name is. A fetch action of
the user's own (another file) keeps vanilla behaviour.
"""

from __future__ import annotations

import os
from types import FrameType
from typing import Optional

#: the end of the action's file name wherever ansible-core is installed (however linked)
FETCH_ACTION_FILE = os.sep + os.path.join("ansible", "plugins", "action", "fetch.py")


def is_builtin_fetch_action(cls: type) -> bool:
    """True for ansible-core's own fetch action class (whichever module object ansible loaded it as)."""
    code = getattr(getattr(cls, "run", None), "__code__", None)
    return code is not None and code.co_filename.endswith(FETCH_ACTION_FILE)


def called_by_fetch_action(frame: Optional[FrameType]) -> bool:
    """True if ``frame`` runs ansible-core's own fetch action (its ``run`` method)."""
    if frame is None:
        return False
    code = frame.f_code
    return code.co_name == "run" and code.co_filename.endswith(FETCH_ACTION_FILE)
