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

from ansible_collections.ns.mitogen.plugins import plugin_utils

plugin_utils.install("_ssh")  # before importing our modules: see plugin_utils/_package.py

from ansible_collections.ns.mitogen.plugins.plugin_utils import _plugin_defs
from ansible_collections.ns.mitogen.plugins.plugin_utils._ssh import Connection

__all__ = ["Connection"]

# Ansible parses DOCUMENTATION into option definitions after this module runs: from
# the second process on, they come from our cache instead (see _plugin_defs).
_plugin_defs.preload("connection", __file__, DOCUMENTATION)
