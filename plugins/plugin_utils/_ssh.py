# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection class of ``ns.mitogen.ssh`` (private).

Owns: how the plugin's options become the login hop's spec (``_login_spec``: the ssh
command line in ``ansible.builtin.ssh``'s order, what is dropped from the user's ssh
arguments and warned about), and ssh's own behaviours vanilla users see (its pty
notice, the one-shot command line where no Python runs, ssh's debug lines at -vvv).
Kept out of ``plugins/connection/ssh.py``, which holds the documentation: Ansible
compiles a plugin's file from source in every process that loads it, while this
module's code comes from our bytecode or code cache.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleError
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins import plugin_utils
from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _options
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase
from ansible_collections.ns.mitogen.plugins.plugin_utils._options import split_words

display = Display()
PKCS11_DEFAULT_PROMPT = "Enter PIN for "  # ansible.builtin.ssh's


# ansible.builtin.ssh's ssh_args when none are set: its sessions then run over a master.
_VANILLA_SSH_ARGS = ["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]


class Connection(MitogenConnectionBase):
    """ns.mitogen over ssh."""

    method = "ssh"
    login_shell = True

    @property
    def transport(self) -> str:
        # Actions that check for ssh (ansible.posix.synchronize, _make_tmp_path's exit 255
        # diagnosis) treat this connection as the ssh it replaces; it takes the same options.
        return "ssh"

    def _user_ssh_args(self) -> List[str]:
        args: List[str] = []
        for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
            value = str(self.get_option(name) or "")
            args += split_words(value) if value or name != "ssh_args" else _VANILLA_SSH_ARGS
        return args

    def _pty_closed_notice(self) -> bytes:
        """ssh's own notice as a session on a pty (-tt) ends, as vanilla's runs get it on stderr."""
        return _options.pty_closed_notice(self._user_ssh_args(), str(self.get_option("host")))

    def _remote_user(self) -> Optional[str]:
        user = self.get_option("remote_user")
        return str(user) if user else None

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        argv = plugin_utils.load("_oneshot").transport_argv(spec, [])
        argv[-1] = cmd  # the remote login shell runs it, as with ansible.builtin.ssh
        if use_pty:
            argv.insert(argv.index("--"), "-tt")
        return argv

    def _say_interpreter(self, stack: List[Dict[str, Any]]) -> None:
        """Also, with ssh's own verbosity on and -vvv, ssh's debug lines from the login (once per run)."""
        super()._say_interpreter(stack)
        hops = len(self._via_stack()) + 1  # the login's hop: after those of mitogen_via
        if display.verbosity < 3 or not stack[hops - 1].get("verbosity"):
            return
        login = self._request("connect", stack=stack[:hops], login_hops=hops)["hello"].get("login_output")
        if login:
            argv = plugin_utils.load("_oneshot").transport_argv(stack[hops - 1], [])[:-1]
            display.vvv("SSH: EXEC %s <the interpreter's start>" % shlex.join(argv), host=self.host_name())
            display.vvv(login.rstrip(), host=self.host_name())

    def _ssh_args(self, *names: str) -> List[str]:
        """The options ``names`` split, without what would break the channel (warned about once)."""
        args: List[str] = []
        for name in names:
            args += split_words(str(self.get_option(name) or ""))
        kept, dropped = _options.filter_ssh_args(args)
        for arg in dropped:
            display.warning(
                "ns.mitogen.ssh: dropped %r from %s: it would break the persistent connection (see "
                "`ansible-doc -t connection ns.mitogen.ssh`)" % (arg, " / ".join(names))
            )
        return kept

    def _login_spec(self) -> Dict[str, Any]:
        spec: Dict[str, Any] = {
            "method": "ssh",
            "hostname": str(self.get_option("host")),
            "ssh_path": str(self.get_option("ssh_executable") or "ssh"),
            "ssh_args": self._ssh_args("ssh_args"),
            "extra_args": self._ssh_args("ssh_common_args", "ssh_extra_args"),
            "check_host_keys": "enforce" if self.get_option("host_key_checking") else "ignore",
            "connect_timeout": self._timeout(),
            "compression": bool(self.get_option("compression")),
            "keepalive_interval": int(self.get_option("keepalive_interval")),
            "keepalive_count": int(self.get_option("keepalive_count")),
            "verbosity": max(int(self.get_option("verbosity") or 0), int(self.get_option("ssh_debug_level") or 0)),
            "connect_retries": int(self.get_option("reconnection_retries") or 0),
        }
        port = self.get_option("port")
        if port:
            spec["port"] = int(port)
        for option, key in (("remote_user", "username"), ("password", "password")):
            value = self.get_option(option)
            if value:
                spec[key] = str(value)
        private_key = self.get_option("private_key")
        if private_key:
            passphrase = self.get_option("private_key_passphrase")
            spec["identity_file"] = _compat.agent_identity(
                str(private_key), str(passphrase) if passphrase else None, spec["hostname"]
            )
        elif self.get_option("private_key_file"):
            spec["identity_file"] = os.path.expanduser(str(self.get_option("private_key_file")))
            spec["identities_only"] = False
        pkcs11 = self.get_option("pkcs11_provider")
        if pkcs11:
            if not spec.get("password"):
                raise AnsibleError("to use pkcs11_provider you must specify a password/pin")
            spec["pkcs11_provider"] = str(pkcs11)
        prompt = self.get_option("sshpass_prompt") or (PKCS11_DEFAULT_PROMPT if pkcs11 else "")
        if self.get_option("password_mechanism") == "disable":
            spec.pop("password", None)
        elif spec.get("password") and prompt:
            spec["password_prompt"] = str(prompt)
        return self._with_python(spec)
