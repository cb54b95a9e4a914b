"""The testbed's login accounts: what they are and making them exist.

Owns the fixed set of test users, their passwords and sudo rights, and the
idempotent machine setup (useradd, chpasswd, /etc/sudoers.d file).  The
per-host home directories are laid out by `hosts.py`; this module only says
what each account needs there (`Account.authorized`).

Shape, as tests use it (`tb.users` is an `Accounts`)::

    tb.users.key      nsm-key     key login only (no authorized password use)
    tb.users.pw       nsm-pw      password login only (no authorized key)
    tb.users.sudo     nsm-sudo    key login, `sudo` NOPASSWD to root and any user
    tb.users.sudopw   nsm-sudopw  key login, `sudo` asks for its own password
                                  (credential caching off: it asks every time)
    tb.users.su       nsm-su      password, no authorized key; target of `su nsm-su`

Every account has `.name`, `.password` (all have one, so `su`/`sudo -S`
work uniformly), `.authorized` (True if the testbed key is in its
authorized_keys), `.uid`, `.gid` and `.home` ("/home/<name>", as seen inside
a host).  None is root, none has a login on the controller's own sshd.
Accounts are created once per machine and left in place (re-running is a
no-op apart from re-setting the passwords).
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .system import TestbedError, run

SUDOERS_FILE = Path("/etc/sudoers.d/ns-mitogen-testbed")
#: Records the shadow hashes chpasswd produced, so later runs can skip it.
PASSWORD_STAMP = Path("/var/tmp/ns-mitogen-testbed/accounts-stamp.json")


@dataclass(frozen=True)
class Account:
    """One test login account."""

    name: str
    password: str
    authorized: bool
    uid: int = -1
    gid: int = -1

    @property
    def home(self) -> str:
        """Home directory path as seen inside a host."""
        return f"/home/{self.name}"


@dataclass(frozen=True)
class Accounts:
    """All test accounts, by role."""

    key: Account
    pw: Account
    sudo: Account
    sudopw: Account
    su: Account
    #: more accounts, each in its own block below (sudo prompt cases: ``SUDO_CASES``)
    extra: tuple[Account, ...] = ()

    def all(self) -> tuple[Account, ...]:
        return (self.key, self.pw, self.sudo, self.sudopw, self.su) + self.extra

    def by_name(self, name: str) -> Account:
        for account in self.all():
            if account.name == name:
                return account
        raise KeyError(f"no test account named {name!r}")


#: The accounts' definitions (uid/gid are filled in by `ensure_accounts`).
ACCOUNTS = Accounts(
    key=Account("nsm-key", "nsm-key-Pass-4711", authorized=True),
    pw=Account("nsm-pw", "nsm-pw-Pass-4711", authorized=False),
    sudo=Account("nsm-sudo", "nsm-sudo-Pass-4711", authorized=True),
    sudopw=Account("nsm-sudopw", "nsm-sudopw-Pass-4711", authorized=True),
    su=Account("nsm-su", "nsm-su-Pass-4711", authorized=False),
)

SUDOERS_TEXT = f"""\
# ns.mitogen testbed accounts; managed by tests/testbed/accounts.py
Defaults:{ACCOUNTS.sudo.name}, {ACCOUNTS.sudopw.name} lecture=never
Defaults:{ACCOUNTS.sudopw.name} timestamp_timeout=0
{ACCOUNTS.sudo.name} ALL=(ALL:ALL) NOPASSWD: ALL
{ACCOUNTS.sudopw.name} ALL=(ALL:ALL) ALL
"""

# -- su and doas (issue 16) ------------------------------------------------------------
# su: nsm-key (or any login) becomes nsm-su with nsm-su's password. doas (opendoas):
# nsm-sudopw is asked for its own password (no "persist": every time), nsm-sudo never;
# root (the controller's test runner, for the ns.mitogen.doas hop) may become anyone,
# never asked: doas, unlike su and sudo, has no rule of its own for root.
# The file is machine-wide (the hosts share /etc); doas wants it root-owned, not writable.
DOAS_CONF = Path("/etc/doas.conf")
DOAS_TEXT = f"""\
# ns.mitogen testbed accounts; managed by tests/testbed/accounts.py
permit nopass {ACCOUNTS.sudo.name} as root
permit {ACCOUNTS.sudopw.name} as root
permit nopass root
"""


def _ensure_doas() -> None:
    try:
        if DOAS_CONF.read_text() == DOAS_TEXT:
            return
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".doas.conf.", dir=DOAS_CONF.parent)
    with os.fdopen(fd, "w") as f:
        f.write(DOAS_TEXT)
    os.chmod(tmp, 0o400)
    os.replace(tmp, DOAS_CONF)


# -- end of su and doas ---------------------------------------------------------------

_resolved: Accounts | None = None


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        try:
            grp.getgrnam(name)
            group = ["--gid", name]  # a group of that name is left over: reuse it
        except KeyError:
            group = ["--user-group"]
        run(["useradd", "--no-create-home", "--home-dir", f"/home/{name}", "--shell", "/bin/bash", *group, name])
        return pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise TestbedError(f"account {name} exists with uid 0; refusing to use it")
    if entry.pw_dir != f"/home/{name}" or entry.pw_shell != "/bin/bash":
        run(["usermod", "--home", f"/home/{name}", "--shell", "/bin/bash", name])
        entry = pwd.getpwnam(name)
    return entry


def _ensure_sudoers() -> None:
    try:
        if SUDOERS_FILE.read_text() == SUDOERS_TEXT:
            return
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".ns-mitogen-testbed.", dir=SUDOERS_FILE.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(SUDOERS_TEXT)
        os.chmod(tmp, 0o440)
        run(["visudo", "-cf", tmp])
        os.replace(tmp, SUDOERS_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _shadow_hashes() -> dict[str, str]:
    names = {a.name for a in ACCOUNTS.all()}
    hashes = {}
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[0] in names:
            hashes[fields[0]] = fields[1]
    return hashes


def _ensure_passwords() -> None:
    """chpasswd the accounts unless the stamp proves nothing changed since last time."""
    wanted = "".join(f"{a.name}:{a.password}\n" for a in ACCOUNTS.all())
    fingerprint = hashlib.sha256(wanted.encode()).hexdigest()
    try:
        stamp = json.loads(PASSWORD_STAMP.read_text())
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("fingerprint") == fingerprint and stamp.get("shadow") == _shadow_hashes():
        return
    run(["chpasswd"], stdin_text=wanted)
    PASSWORD_STAMP.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    PASSWORD_STAMP.write_text(json.dumps({"fingerprint": fingerprint, "shadow": _shadow_hashes()}))


def ensure_accounts() -> Accounts:
    """Create missing accounts, set passwords and sudoers; return resolved accounts."""
    global _resolved
    if _resolved is not None:
        return _resolved
    resolved = {}
    for role in ("key", "pw", "sudo", "sudopw", "su"):
        account: Account = getattr(ACCOUNTS, role)
        entry = _ensure_user(account.name)
        resolved[role] = Account(account.name, account.password, account.authorized, entry.pw_uid, entry.pw_gid)
    _ensure_passwords()
    _ensure_sudoers()
    _ensure_doas()
    _resolved = Accounts(**resolved, extra=ensure_sudo_cases())
    return _resolved


# ---- sudo prompt cases (issue 16, B2) ---------------------------------------------
# One account per sudoers variant, each with its own ``Defaults:<user>`` line in its
# own sudoers file, so that the cases never interfere with each other or with the
# accounts above. Each logs in with the testbed key; sudo asks for its own password
# every time (timestamp_timeout=0), to root or to anyone.
SUDO_CASES_FILE = Path("/etc/sudoers.d/ns-mitogen-testbed-sudo-cases")
#: case -> (account, the case's sudoers Defaults)
SUDO_CASES = {
    "pwfeedback": (Account("nsm-s-pwfb", "nsm-s-pwfb-Pass-4711", authorized=True), "pwfeedback"),
    "requiretty": (Account("nsm-s-tty", "nsm-s-tty-Pass-4711", authorized=True), "requiretty"),
    "use_pty": (Account("nsm-s-usepty", "nsm-s-usepty-Pass-4711", authorized=True), "use_pty"),
    "log_output": (Account("nsm-s-logout", "nsm-s-logout-Pass-4711", authorized=True), "log_output"),
    "lecture": (Account("nsm-s-lect", "nsm-s-lect-Pass-4711", authorized=True), "lecture=always"),
    # sudo ignores -p: its own (here translated, with a non-breaking space) prompt wins
    "passprompt_override": (
        Account("nsm-s-ppo", "nsm-s-ppo-Pass-4711", authorized=True),
        'passprompt_override, passprompt="[sudo] Passwort f\u00fcr %p:\u00a0"',
    ),
    # may not run sudo at all (not in sudoers): sudo's own refusal
    "not_in_sudoers": (Account("nsm-s-none", "nsm-s-none-Pass-4711", authorized=True), ""),
}


def sudo_case(name: str) -> Account:
    """The resolved account of sudo case ``name`` (``ensure_accounts`` made it)."""
    account = SUDO_CASES[name][0]
    entry = pwd.getpwnam(account.name)
    return Account(account.name, account.password, account.authorized, entry.pw_uid, entry.pw_gid)


def _sudo_cases_text() -> str:
    lines = ["# ns.mitogen testbed sudo prompt cases; managed by tests/testbed/accounts.py"]
    for account, defaults in SUDO_CASES.values():
        if account.name == SUDO_CASES["not_in_sudoers"][0].name:
            continue
        extra = ", %s" % defaults if defaults and "lecture" not in defaults else ""
        lecture = "" if "lecture" in defaults else ", lecture=never"
        lines.append(f"Defaults:{account.name} timestamp_timeout=0{lecture}{extra}")
        if "lecture" in defaults:
            lines.append(f"Defaults:{account.name} {defaults}")
        lines.append(f"{account.name} ALL=(ALL:ALL) ALL")
    return "\n".join(lines) + "\n"


def ensure_sudo_cases() -> tuple[Account, ...]:
    """Create the sudo case accounts, their passwords and sudoers file (idempotent); return them."""
    wanted = ""
    accounts = []
    for account, _defaults in SUDO_CASES.values():
        entry = _ensure_user(account.name)
        accounts.append(Account(account.name, account.password, account.authorized, entry.pw_uid, entry.pw_gid))
        wanted += f"{account.name}:{account.password}\n"
    stamp = PASSWORD_STAMP.with_name("sudo-cases-stamp")
    fingerprint = hashlib.sha256(wanted.encode()).hexdigest()
    try:
        done = stamp.read_text() == fingerprint
    except OSError:
        done = False
    if not done:
        run(["chpasswd"], stdin_text=wanted)
        stamp.write_text(fingerprint)
    text = _sudo_cases_text()
    try:
        if SUDO_CASES_FILE.read_text() == text:
            return tuple(accounts)
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".ns-mitogen-testbed.", dir=SUDO_CASES_FILE.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o440)
        run(["visudo", "-cf", tmp])
        os.replace(tmp, SUDO_CASES_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return tuple(accounts)
