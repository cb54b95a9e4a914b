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
  - Options that only make sense for one ssh process per step are dropped from
    O(ssh_args), O(ssh_common_args) and O(ssh_extra_args) - C(ControlMaster),
    C(ControlPersist), C(ControlPath) and C(-C).
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
    description: Path to the private key to authenticate with.
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
  host_key_checking:
    description: Whether ssh refuses hosts whose key is unknown or changed (never prompts).
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
    description: Arguments for ssh (connection-sharing options are dropped, see above).
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
    description: Extra arguments for ssh.
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
    description: Extra arguments for ssh only.
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

from typing import Any, Dict, List, Optional

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _transports
from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase, split_words

# Options that belong to one-ssh-process-per-step operation; ns.mitogen keeps one.
_DROPPED_OPTIONS = ("controlmaster", "controlpersist", "controlpath")


def filter_ssh_args(args: List[str]) -> List[str]:
    """``args`` without -C and connection-sharing options (which would fight ours)."""
    out: List[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "-C":
            continue
        if arg == "-o" and i + 1 < len(args):
            if args[i + 1].split("=", 1)[0].split(None, 1)[0].lower() in _DROPPED_OPTIONS:
                skip = True
                continue
        elif arg.startswith("-o") and arg[2:].split("=", 1)[0].strip().lower() in _DROPPED_OPTIONS:
            continue
        out.append(arg)
    return out


def first_ssh_options(args: List[str]) -> Dict[str, str]:
    """The ``-o`` options in ``args``, lower-cased name -> value, the first of each winning (as ssh)."""
    found: Dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg == "-o" and i + 1 < len(args):
            text = args[i + 1]
        elif arg.startswith("-o") and len(arg) > 2:
            text = arg[2:]
        else:
            continue
        parts = text.strip().replace("=", " ", 1).split(None, 1)
        if parts:
            found.setdefault(parts[0].lower(), parts[1].strip() if len(parts) > 1 else "")
    return found


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
        """ssh's own notice as a session on a pty (-tt) ends, on stderr, as vanilla's runs get it.

        "Shared connection to HOST closed." over a persistent master (ansible's default
        ControlMaster=auto with ControlPersist), "Connection to HOST closed." without;
        nothing when ssh is quiet (-q, LogLevel below INFO).
        """
        args = self._user_ssh_args()
        options = first_ssh_options(args)
        if "-q" in args or options.get("loglevel", "INFO").upper() in ("QUIET", "FATAL", "ERROR"):
            return b""
        master = options.get("controlmaster", "no").lower() not in ("no", "false")
        persist = options.get("controlpersist", "no").lower() not in ("no", "false")
        text = "%s to %s closed.\r\n" % ("Shared connection" if master and persist else "Connection", self.get_option("host"))
        return text.encode("utf-8", "replace")

    def _remote_user(self) -> Optional[str]:
        user = self.get_option("remote_user")
        return str(user) if user else None

    def _one_shot_argv(self, spec: Dict[str, Any], cmd: str, use_pty: bool) -> List[str]:
        argv = _transports.make(spec).argv([])
        argv[-1] = cmd  # the remote login shell runs it, as with ansible.builtin.ssh
        if use_pty:
            argv.insert(argv.index("--"), "-tt")
        return argv

    def _login_spec(self) -> Dict[str, Any]:
        args: List[str] = []
        for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
            args += split_words(str(self.get_option(name) or ""))
        spec: Dict[str, Any] = {
            "method": "ssh",
            "hostname": str(self.get_option("host")),
            "ssh_path": str(self.get_option("ssh_executable") or "ssh"),
            "ssh_args": filter_ssh_args(args),
            "check_host_keys": "enforce" if self.get_option("host_key_checking") else "ignore",
            "connect_timeout": self._timeout(),
            "compression": bool(self.get_option("compression")),
        }
        port = self.get_option("port")
        if port:
            spec["port"] = int(port)
        for option, key in (("remote_user", "username"), ("password", "password"), ("private_key_file", "identity_file")):
            value = self.get_option(option)
            if value:
                spec[key] = str(value)
        if self.get_option("password_mechanism") == "disable":
            spec.pop("password", None)
        elif spec.get("password") and self.get_option("sshpass_prompt"):
            spec["password_prompt"] = str(self.get_option("sshpass_prompt"))
        return self._with_python(spec)
