# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen.ssh: one persistent interpreter per target account over one SSH connection."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ssh
short_description: Run tasks in a persistent Python interpreter over SSH
description:
  - Starts one Python interpreter per target account over a single C(ssh) process and
    keeps it for the whole run; every command, file transfer and module is then one
    framed RPC to it, instead of one SSH session, shell and Python per step.
  - Accepts the variables and settings of P(ansible.builtin.ssh#connection) where they apply.
  - The ssh command line is built in the order P(ansible.builtin.ssh#connection) builds
    it - O(ssh_args) first, then what the options below set (C(Port), C(User), the
    identity, C(ConnectTimeout), ...), then O(ssh_common_args) and O(ssh_extra_args) -
    and only then what ns.mitogen adds itself (C(StrictHostKeyChecking=yes) while
    O(host_key_checking) is on, C(BatchMode), C(ServerAliveInterval) and
    C(ServerAliveCountMax)). OpenSSH keeps the first value it sees of an option, so
    a user's C(-o StrictHostKeyChecking=no), C(UserKnownHostsFile), C(ProxyCommand),
    C(ServerAliveInterval) and so on win, exactly as with the built-in plugin.
  - Dropped from O(ssh_args), O(ssh_common_args) and O(ssh_extra_args), as one
    connection per host is kept anyway and the channel compresses itself -
    C(-C), C(-S) and C(-o) C(ControlMaster), C(ControlPersist), C(ControlPath),
    C(Compression). Dropped with a warning, as they would break the persistent
    channel (a terminal, no or another remote command, no input, ssh in the
    background) - C(-t), C(-N), C(-n), C(-f), C(-s), C(-W), C(-G), C(-V), C(-O), C(-M)
    and C(-o) C(RequestTTY), C(RemoteCommand), C(SessionType), C(StdinNull),
    C(ForkAfterAuthentication).
  - Bad option values (a timeout below 1, a boolean that is not one, a negative
    count) fail the task with an error naming the option, before any connection
    is tried.
author: ns.mitogen contributors (@ns-mitogen)
version_added: "0.1.0"
extends_documentation_fragment:
  - ns.mitogen.connection
  - ns.mitogen.original
options:
  host:
    description: Hostname or address to connect to.
    default: inventory_hostname
    type: string
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_ssh_host
      - name: delegated_vars['ansible_host']
      - name: delegated_vars['ansible_ssh_host']
  port:
    description: Remote port to connect to.
    type: int
    ini:
      - section: defaults
        key: remote_port
    env:
      - name: ANSIBLE_REMOTE_PORT
    vars:
      - name: ansible_port
      - name: ansible_ssh_port
    keyword:
      - name: port
  remote_user:
    description: User to log in as; when unset, ssh chooses (usually the local user).
    type: string
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
      - name: ansible_ssh_user
    cli:
      - name: user
    keyword:
      - name: remote_user
  password:
    description: Password for O(remote_user), typed at ssh's prompt on a private pty.
    type: string
    vars:
      - name: ansible_password
      - name: ansible_ssh_pass
      - name: ansible_ssh_password
  password_mechanism:
    description:
      - How P(ansible.builtin.ssh#connection) answers ssh's password prompt; accepted so
        that the same settings work here.
      - V(ssh_askpass) and V(sshpass) behave alike - ns.mitogen types the password at the
        prompt itself, on a private pty, once per target account (no C(sshpass) program
        is needed). V(disable) sends no password (key or agent logins only), as with
        the built-in plugin.
    type: string
    default: ssh_askpass
    choices:
      - ssh_askpass
      - sshpass
      - disable
    env:
      - name: ANSIBLE_SSH_PASSWORD_MECHANISM
    ini:
      - section: ssh_connection
        key: password_mechanism
    vars:
      - name: ansible_ssh_password_mechanism
  sshpass_prompt:
    description:
      - Text of a prompt to answer with O(password) besides ssh's own password prompts
        (for example C(Enter PIN for) of a PKCS#11 token); matched without regard to case.
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: sshpass_prompt
    env:
      - name: ANSIBLE_SSHPASS_PROMPT
    vars:
      - name: ansible_sshpass_prompt
  private_key_file:
    description:
      - Path to the private key to authenticate with (C(-o IdentityFile), as with the
        built-in plugin; ssh may still offer the agent's keys first).
    type: string
    ini:
      - section: defaults
        key: private_key_file
    env:
      - name: ANSIBLE_PRIVATE_KEY_FILE
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
    cli:
      - name: private_key_file
        option: '--private-key'
  private_key:
    description:
      - Private key contents in PEM format (ansible-core 2.19 or newer). As with
        P(ansible.builtin.ssh#connection), it is loaded into the ssh-agent of
        ansible-core's C(SSH_AGENT) setting (which must not be V(none)) and ssh offers
        that key alone. Takes precedence over O(private_key_file).
    type: string
    env:
      - name: ANSIBLE_PRIVATE_KEY
    vars:
      - name: ansible_private_key
      - name: ansible_ssh_private_key
  private_key_passphrase:
    description:
      - Passphrase of O(private_key) (used to decrypt it before it goes into the agent).
      - This does not have any effect when used with O(private_key_file).
    type: string
    env:
      - name: ANSIBLE_PRIVATE_KEY_PASSPHRASE
    vars:
      - name: ansible_private_key_passphrase
      - name: ansible_ssh_private_key_passphrase
  pkcs11_provider:
    description:
      - PKCS#11 smart card provider such as opensc, for example
        C(/usr/local/lib/opensc-pkcs11.so) (C(-o PKCS11Provider), with public key
        authentication alone, as the built-in plugin sets it).
      - O(password) is then the token's PIN, typed at ssh's C(Enter PIN for) prompt
        (or O(sshpass_prompt)); a PIN is required.
    type: string
    default: ""
    env:
      - name: ANSIBLE_PKCS11_PROVIDER
    ini:
      - section: ssh_connection
        key: pkcs11_provider
    vars:
      - name: ansible_ssh_pkcs11_provider
  reconnection_retries:
    description:
      - Number of attempts to log in again after one that ssh itself failed (exit
        status 255), pausing 0, 1, 3, 7, ... (at most 30) seconds before each, as
        P(ansible.builtin.ssh#connection) does. Only the login is retried - a task
        whose interpreter is lost mid-task is never run again. A refused password is
        never retried.
    type: integer
    default: 0
    env:
      - name: ANSIBLE_SSH_RETRIES
    ini:
      - section: connection
        key: retries
      - section: ssh_connection
        key: retries
    vars:
      - name: ansible_ssh_retries
  verbosity:
    description:
      - Requested verbosity level for the ssh client (C(-v) that many times). Its debug
        lines from the login are shown with C(-vvv), once per interpreter (ssh logs in
        once per host and account); the later ones go to the multiplexer's log
        (E(NS_MITOGEN_LOG_DIR)).
    type: integer
    default: 0
    env:
      - name: ANSIBLE_SSH_VERBOSITY
    ini:
      - section: ssh_connection
        key: verbosity
    vars:
      - name: ansible_ssh_verbosity
  ssh_debug_level:
    description:
      - The original Mitogen's name for O(verbosity) (0 to 3); the larger of the two applies.
    type: integer
    default: 0
    env:
      - name: NS_MITOGEN_SSH_DEBUG_LEVEL
    vars:
      - name: mitogen_ssh_debug_level
  keepalive_interval:
    description:
      - Seconds between ssh's keepalive probes (C(ServerAliveInterval)); a host that
        stops answering is given up after about O(keepalive_interval) times
        O(keepalive_count) seconds. A C(ServerAliveInterval) in the ssh arguments wins.
    type: integer
    default: 30
    env:
      - name: NS_MITOGEN_SSH_KEEPALIVE_INTERVAL
    vars:
      - name: mitogen_ssh_keepalive_interval
  keepalive_count:
    description:
      - Keepalive probes that may go unanswered (C(ServerAliveCountMax)). A
        C(ServerAliveCountMax) in the ssh arguments wins.
    type: integer
    default: 10
    env:
      - name: NS_MITOGEN_SSH_KEEPALIVE_COUNT
    vars:
      - name: mitogen_ssh_keepalive_count
  host_key_checking:
    description:
      - Whether ssh refuses hosts whose key is unknown or changed (never prompts).
      - When off, C(-o StrictHostKeyChecking=no) is passed where the built-in plugin
        passes it, and C(-o UserKnownHostsFile=/dev/null) after the user's ssh
        arguments (nothing is written to C(~/.ssh/known_hosts)).
    type: boolean
    default: true
    ini:
      - section: defaults
        key: host_key_checking
      - section: ssh_connection
        key: host_key_checking
    env:
      - name: ANSIBLE_HOST_KEY_CHECKING
      - name: ANSIBLE_SSH_HOST_KEY_CHECKING
    vars:
      - name: ansible_host_key_checking
      - name: ansible_ssh_host_key_checking
  use_tty:
    description:
      - Run commands that take no input on a pseudo-terminal, as C(ssh -tt) does for
        P(ansible.builtin.ssh#connection) - M(ansible.builtin.raw) and
        M(ansible.builtin.script) output then arrives with stdout and stderr merged and
        CRLF line ends, exactly as with the built-in plugin.
    type: bool
    default: true
    env:
      - name: ANSIBLE_SSH_USETTY
    ini:
      - key: usetty
        section: ssh_connection
    vars:
      - name: ansible_ssh_use_tty
  compression:
    description:
      - Compress the channel to the target with zlib, one stream each way for the life
        of the connection, so that what repeats from task to task (module arguments,
        result keys) costs a few bytes. This replaces ssh's own C(-C), which is always
        dropped. Turn it off on a fast network when controller CPU matters more than bytes.
    type: bool
    default: true
    env:
      - name: NS_MITOGEN_SSH_COMPRESSION
    vars:
      - name: mitogen_ssh_compression
  ssh_executable:
    description: The ssh client to run.
    type: string
    default: ssh
    env:
      - name: ANSIBLE_SSH_EXECUTABLE
    ini:
      - key: ssh_executable
        section: ssh_connection
    vars:
      - name: ansible_ssh_executable
  ssh_args:
    description: Arguments for ssh, first on its command line (what is dropped - see above).
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: ssh_args
    env:
      - name: ANSIBLE_SSH_ARGS
    vars:
      - name: ansible_ssh_args
  ssh_common_args:
    description: Extra arguments for ssh, after the login options (what is dropped - see above).
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: ssh_common_args
    env:
      - name: ANSIBLE_SSH_COMMON_ARGS
    vars:
      - name: ansible_ssh_common_args
    cli:
      - name: ssh_common_args
  ssh_extra_args:
    description: Extra arguments for ssh only, after O(ssh_common_args).
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: ssh_extra_args
    env:
      - name: ANSIBLE_SSH_EXTRA_ARGS
    vars:
      - name: ansible_ssh_extra_args
    cli:
      - name: ssh_extra_args
"""

EXAMPLES = r"""
# inventory
# [web]
# web1 ansible_host=10.0.0.5 ansible_user=deploy ansible_connection=ns.mitogen.ssh
"""

import os
import shlex
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleError
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install()  # before importing our modules: see plugin_utils/__init__.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _compat, _options, _plugin_defs
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


# Ansible parses DOCUMENTATION into option definitions after this module runs: from
# the second process on, they come from our cache instead (see _plugin_defs).
_plugin_defs.preload("connection", __file__, DOCUMENTATION)
