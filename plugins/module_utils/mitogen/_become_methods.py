# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sudo``, ``su`` and ``doas`` transports: become tools that ask on a terminal (private module).

Owns: ``Sudo``, ``Su`` and ``Doas`` (argv, prompt answers, failures in plain words);
``_methods`` names them.

Rules it keeps (beside ``_transports``'):
- sudo runs on a private terminal too (``requiretty`` works): see ``Sudo``.
- Both run on a private pty: opendoas reads the password from ``/dev/tty``;
  util-linux ``su`` asks through PAM on stderr and reads stdin (other su
  implementations use the tty). The password is typed where the prompt appeared
  (the tty, else stdin), only when a prompt appears, never on a command line; the
  payload follows on stdin once the interpreter says it is ready.
- A prompt is recognised by words (``Password``, the translations ansible's ``su``
  become plugin knows, or the caller's ``prompts``) at the end of what the tool
  printed, with or without a colon (ASCII or full-width), after any spaces,
  non-breaking ones included.
- A wrong password fails at the first sign of it: a second prompt, or the tool
  exiting after a password was typed (its own words, translated or not, are kept
  in the error's output). A prompt with no password to give fails at once.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Dict, List, Optional, Tuple

from ._errors import ConnectError
from ._transports import SUDO_PROMPT, SpecError, Transport

# A password prompt that is not ours (``sudo -p`` ignored: a PAM module's own prompt
# under ``passprompt_override`` off, a translated one, another sudo implementation):
# the unfinished last line on the terminal names a password in a language sudo and
# PAM are translated to, and ends as a question does (a colon, maybe a non-breaking
# space).
_PASSWORD_WORD = re.compile(
    "password|passwort|passphrase|mot de passe|contraseña|contrasenya|senha|wachtwoord|lösenord|adgangskode|"
    "passord|salasana|hasło|heslo|jelszó|parola|пароль|密码|密碼|パスワード|암호|비밀번호|κωδικός|סיסמה|كلمة",
    re.IGNORECASE,
)
_PROMPT_END = re.compile(r"[:：?]\s*$")


def looks_like_prompt(line: str) -> bool:
    """Whether ``line`` (the unfinished last line a program printed) asks for a password."""
    return bool(_PROMPT_END.search(line) and _PASSWORD_WORD.search(line))


def through_shell(boot: List[str]) -> List[str]:
    """``boot`` as a command that survives ``sudo -i``/``-s`` (a login shell's ``-c``).

    sudo then joins the command into one string for the target's shell, with a
    backslash before every character but letters, digits, ``_``, ``-`` and ``$``: a
    newline becomes a line continuation (gone), and ``$`` still expands. So the
    command is passed octal-escaped, made of neither, and a plain ``/bin/sh``
    rebuilds and runs it (``eval`` of ``printf``'s output), after the login shell
    has set the environment as for a login.
    """
    script = " ".join(shlex.quote(a) for a in boot)
    octal = "".join("\\%03o" % b for b in script.encode("utf-8"))
    return ["/bin/sh", "-c", "eval \"`printf '%s'`\"" % octal]


class Sudo(Transport):
    """``sudo``, always on a private terminal, the password typed only at its prompt.

    The terminal makes ``requiretty`` work, and the password goes to sudo alone: it
    is typed on the terminal (echo off, as sudo sets it) when a prompt appears, never
    written ahead on a pipe the interpreter reads. Our own prompt (``-p``) is
    recognised, and so is a prompt sudo shows instead of it (``looks_like_prompt``);
    the lecture and ``pwfeedback``'s asterisks are only output. A second prompt, or
    "Sorry, try again", means the password was refused; a prompt when no password
    was given means it is missing: either fails at once, whatever the language.
    """

    method = "sudo"
    local_link = True
    use_pty = True
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "username": ((str,), "root"),
        "password": ((str, type(None)), None),
        "sudo_path": ((str,), "sudo"),
        # more arguments, after ours and before the command (the controller checks them)
        "sudo_args": ((list,), []),
        "preserve_env": ((bool,), False),
        # -H (vanilla's default become_flags have it)
        "set_home": ((bool,), True),
    }

    def describe(self) -> str:
        return self.spec.get("name") or "sudo:%s" % self.spec["username"]

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        argv = [s["sudo_path"]]
        if s["set_home"]:
            argv.append("-H")
        # Never -n: a prompt with no password to give is "missing" in any language
        # (sudo's own words for it are translated).
        argv += ["-u", s["username"], "-p", SUDO_PROMPT]
        if s["preserve_env"]:
            argv.append("-E")
        argv += list(s["sudo_args"])
        if any(a in ("--login", "--shell") or re.fullmatch(r"-[A-Za-z]*[is][A-Za-z]*", a) for a in s["sudo_args"]):
            boot = through_shell(boot)
        return argv + ["--"] + boot

    def on_text(self, channel: str, text: str) -> Optional[bytes]:
        if "Sorry, try again" in text:
            raise self._refused()
        return super().on_text(channel, text)

    def on_new_text(self, channel: str, text: str) -> Optional[bytes]:
        if channel != "tty":
            return None
        last = text.replace("\r", "").rpartition("\n")[2]
        if SUDO_PROMPT not in text and not looks_like_prompt(last):
            return None
        if self.prompts_answered or self.spec.get("password") is None:
            # asked again: refused; asked with none to give (-n ignored): missing
            raise self._refused() if self.prompts_answered else self._missing()
        return self.password_bytes()

    def _refused(self) -> ConnectError:
        return ConnectError(
            self.describe(), "sudo password was refused", "authenticate", "", "check the sudo password for this user"
        )

    def _missing(self) -> ConnectError:
        return ConnectError(
            self.describe(), "sudo needs a password and none was given", "authenticate", "", "set the sudo (become) password"
        )

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        if "a password is required" in output or "a terminal is required" in output:
            return "sudo needs a password and none was given", "set the sudo (become) password"
        if "incorrect password attempt" in output or "Sorry, try again" in output:
            return "sudo password was refused", "check the sudo password"
        if "is not in the sudoers file" in output or "not allowed to execute" in output or "may not run sudo" in output:
            return "this user may not use sudo for that target user", "check the sudoers rules"
        if "unknown user" in output:
            return "sudo: unknown target user", "check the become user"
        return super().explain(output, returncode)


# The words of ``su``'s password prompt in the languages PAM speaks (the list of
# ansible's ``su`` become plugin, SU_PROMPT_LOCALIZATIONS).
SU_PROMPTS = (
    "Password",
    "암호",
    "パスワード",
    "Adgangskode",
    "Contraseña",
    "Contrasenya",
    "Hasło",
    "Heslo",
    "Jelszó",
    "Lösenord",
    "Mật khẩu",
    "Mot de passe",
    "Parola",
    "Parool",
    "Pasahitza",
    "Passord",
    "Passwort",
    "Salasana",
    "Sandi",
    "Senha",
    "Wachtwoord",
    "ססמה",
    "Лозинка",
    "Парола",
    "Пароль",
    "गुप्तशब्द",
    "शब्दकूट",
    "సంకేతపదము",
    "හස්පදය",
    "密码",
    "密碼",
    "口令",
)
# opendoas's own prompt, "doas (user@host) password: ", untranslated; and PAM's.
DOAS_PROMPTS = (r"doas \([^)]*\) password", "Password")


def prompt_pattern(words: List[str], regex: bool = False) -> "re.Pattern[str]":
    """A prompt made of one of ``words`` at the end of the text: spaces (NBSP too), an
    optional ASCII or full-width colon, then nothing but spaces."""
    alternatives = "|".join(w if regex else re.escape(w) for w in words)
    return re.compile(r"(?:%s)[\s\u00a0]*[:：]?[\s\u00a0]*\Z" % alternatives, re.IGNORECASE)


class _Asking(Transport):
    """A become tool that may ask for a password on the tty or on stderr."""

    local_link = True
    use_pty = True
    password_on_stdin = True  # the payload waits until the interpreter is ready
    default_prompts: Tuple[str, ...] = ()
    prompts_are_regex = False

    def __init__(self, spec: Dict[str, Any]) -> None:
        super().__init__(spec)
        if not self.spec["username"]:
            raise SpecError("%s: option 'username' must not be empty" % self.method)
        words = list(self.spec.get("prompts") or ())
        if words and self.prompts_are_regex:
            # the doas plugin's prompt_l10n: regular expressions matched at the start of a
            # line of output (its re.match), such as its own default r"doas \("
            self.prompt = re.compile(r"(?:^|[\r\n])(?:%s)" % "|".join(words))
        else:
            self.prompt = prompt_pattern(words or list(self.default_prompts), regex=self.prompts_are_regex)

    def describe(self) -> str:
        return self.spec.get("name") or "%s:%s" % (self.method, self.spec["username"])

    def _refused(self, text: str) -> ConnectError:
        return ConnectError(
            self.describe(),
            "Incorrect %s password for user %r (refused)" % (self.method, self.spec["username"]),
            "authenticate",
            text,
            "check the become password for %s" % self.spec["username"],
        )

    def on_text(self, channel: str, text: str) -> Optional[bytes]:
        start = self._answered_at.get(channel, 0)
        if not self.prompt.search(text[start:]):
            return None
        if self.prompts_answered:
            raise self._refused(text)
        if self.spec.get("password") is None:
            raise ConnectError(
                self.describe(),
                "Missing %s password for user %r: %s asked for one and none was given"
                % (self.method, self.spec["username"], self.method),
                "authenticate",
                text,
                "set the become password (ansible_become_password, or --ask-become-pass)",
            )
        self._answered_at[channel] = len(text)
        self.prompts_answered += 1
        return self.password_bytes()

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        if self.prompts_answered and returncode == 1:
            return self._refused(output).reason, "check the become password for %s" % self.spec["username"]
        return super().explain(output, returncode)


class Su(_Asking):
    """``su [flags] USER -c '<boot command>'``: the user's shell (or ``-s``'s) runs it.

    ``su_args`` go before the user, as ansible's ``su`` become plugin puts
    ``become_flags``; ``-c`` is ours. su waits for its child and exits with its
    status (128 + N when signal N killed it).
    """

    method = "su"
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "username": ((str,), "root"),
        "password": ((str, type(None)), None),
        "su_path": ((str,), "su"),
        "su_args": ((list,), []),
        # prompt words (ansible's prompt_l10n); default: SU_PROMPTS
        "prompts": ((list, type(None)), None),
    }
    default_prompts = SU_PROMPTS

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        return [s["su_path"]] + list(s["su_args"]) + [s["username"], "-c", " ".join(shlex.quote(a) for a in boot)]

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        if "does not exist" in output or "user not found" in output.lower():
            return "su: user %r does not exist" % self.spec["username"], "check the become user"
        return super().explain(output, returncode)


class Doas(_Asking):
    """``doas [-n] [flags] -u USER <boot command>``: doas runs the command (Debian's,
    built with PAM, as its child: it waits and exits with its status).

    ``-n`` without a password (nothing may wait on a question), as ansible's
    ``doas`` become plugin does.
    """

    method = "doas"
    options: Dict[str, Tuple[Tuple[type, ...], Any]] = {
        "username": ((str,), "root"),
        "password": ((str, type(None)), None),
        "doas_path": ((str,), "doas"),
        "doas_args": ((list,), []),
        # prompt regular expressions (the doas become plugin's prompt_l10n), matched at a
        # line's start; default: DOAS_PROMPTS, at the end of the output
        "prompts": ((list, type(None)), None),
    }
    default_prompts = DOAS_PROMPTS
    prompts_are_regex = True

    def argv(self, boot: List[str]) -> List[str]:
        s = self.spec
        argv = [s["doas_path"]]
        if s.get("password") is None and "-n" not in s["doas_args"]:
            argv.append("-n")
        return argv + list(s["doas_args"]) + ["-u", s["username"]] + boot

    def explain(self, output: str, returncode: Optional[int]) -> Tuple[str, str]:
        if "Authentication required" in output:
            return (
                "Missing doas password for user %r: doas needs one and none was given" % self.spec["username"],
                "set the become password (ansible_become_password, or --ask-become-pass)",
            )
        if "Authentication failed" in output:
            return self._refused(output).reason, "check the become password for %s" % self.spec["username"]
        if "Operation not permitted" in output or "not permitted" in output:
            return "doas.conf permits no such command as user %r" % self.spec["username"], "check /etc/doas.conf"
        if "unknown user" in output:
            return "doas: unknown user %r" % self.spec["username"], "check the become user"
        return super().explain(output, returncode)
