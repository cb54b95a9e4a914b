# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the hop connections ``ns.mitogen.sudo``, ``su`` and ``doas`` share (private).

Owns: ``HopConnectionBase``, a connection whose target is an account on the
controller reached by a become method (the original product's ``mitogen_sudo``,
``mitogen_su``, ``mitogen_doas``): its one hop is started from the multiplexer
itself with that method (no interpreter of the controller's user in between), and
its interpreter is the target's login interpreter (a task's ``become`` stacks on
it, and the interpreter limit counts what is stacked on it). The hop's options
are the connection's own ``become_user``, ``become_pass``, ``become_exe`` and
``become_flags``, read as the become method's own spec builder reads a become
plugin's (``_OptionsOf``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.ns.mitogen.plugins.plugin_utils import _become, _options
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase


class _OptionsOf:
    """The connection's hop options, as a become plugin's ``get_option`` gives them."""

    def __init__(self, connection: MitogenConnectionBase) -> None:
        self._connection = connection

    def get_option(self, name: str) -> Any:
        return self._connection.get_option(name) if self._connection.has_option(name) else None

    def has_option(self, name: str) -> bool:
        return bool(self._connection.has_option(name))


class HopConnectionBase(MitogenConnectionBase):
    """ns.mitogen on an account of the controller, reached with a become method."""

    def _hop_user(self) -> str:
        return str(_options.native(self.get_option("become_user")) or "root")

    def _remote_user(self) -> Optional[str]:
        return self._hop_user()

    def _login_spec(self) -> Dict[str, Any]:
        spec = _become.NATIVE_SPECS[self.method](_OptionsOf(self), self._timeout())
        return self._with_python(spec)

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        raise AnsibleConnectionFailure(
            "ns.mitogen.%s: no Python interpreter could start as %s; set ansible_python_interpreter "
            "to a Python that user can run" % (self.method, self._hop_user())
        )
