"""Run one playbook against testbed hosts under a named variant; capture every result.

Owns:

* `VARIANTS`, the one table of what is compared (strategy, connection,
  pipelining), and `unavailable_reason()` (does a variant's plugin resolve?);
* `reset_targets()`, which wipes what an earlier run left on the hosts;
* the per-run files: inventory, ansible.cfg, extra vars, capture file and log,
  all in a fresh run directory (`nsm-diff-run-<variant>-*`, under `work_dir`);
* `run_playbook()`, which runs ansible-playbook under `reaper.py` (so that no
  process of the run outlives it) and reads back what the `nsm_capture`
  callback wrote;
* `playbook_meta()`, the harness settings a playbook carries in its first
  play's `vars: {nsm_diff: {...}}` (verbosity, secrets, expected rc).

Normalization and comparison live in `normalize.py`.

Typical use::

    result = run_playbook(tb, PLAYBOOK_DIR / "files.yml", "vanilla", tmp_path)
    result.records            # [{"host", "task", "status", "result", ...}, ...]
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.testbed import Testbed

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
COLLECTIONS = REPO / ".build" / "collections"
PLAYBOOK_DIR = HERE / "playbooks"
CALLBACK_DIR = HERE / "callback"
REAPER = HERE / "reaper.py"
CALLBACK_NAME = "nsm_capture"
CAPTURE_ENV = "NSM_DIFF_CAPTURE"
#: Environment variable naming the virtualenv whose ansible-core runs the
#: playbooks (default: the one running the tests), e.g. `.venvs/core-2.16`.
ANSIBLE_VENV_ENV = "NSM_ANSIBLE_VENV"

#: Inventory hosts of every run (testbed hosts reachable from the controller).
HOSTS: tuple[str, ...] = ("h1", "h2")
#: The only place the playbooks write on targets (reset removes it).
TARGET_DIR = "/tmp/nsm-diff"
#: Prefix of every run directory; normalize.yml masks paths below it.
RUN_DIR_PREFIX = "nsm-diff-run-"
PYTHON = "/usr/bin/python3"
#: Ansible's default ssh_args with a shorter persistence.  Vanilla without
#: pipelining opens 4-5 connections per task; multiplexing them makes its runs
#: about 3x faster.  The masters live in a private ControlPath directory and
#: reaper.py ends them after every run, so none outlives it.
SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=30s"
DEFAULT_TIMEOUT = 300.0
#: How Ansible reports an exception in a callback method (as a warning, the run goes on).
CALLBACK_FAILURE_RE = re.compile(r"Failure using method \(\w+\) in callback plugin\s+\(<[^>]*nsm_capture[^>]*>\):[^\n]*")


class RunError(RuntimeError):
    """ansible-playbook could not be run to completion (timeout, no capture)."""


@dataclass(frozen=True)
class Variant:
    """One way of running a playbook: strategy + connection + pipelining."""

    name: str
    strategy: str
    connection: str
    pipelining: bool
    description: str
    callbacks: tuple[str, ...] = ()  # more callbacks enabled (beside the capture's)

    @property
    def plugins(self) -> tuple[tuple[str, str], ...]:
        """(type, name) of the non-builtin plugins this variant needs."""
        wanted = (("connection", self.connection), ("strategy", self.strategy))
        return tuple((kind, name) for kind, name in wanted if not name.startswith("ansible.builtin."))


MITOGEN_SSH = "ns.mitogen.ssh"

#: Every variant the harness knows (the one place they are defined).
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("vanilla", "ansible.builtin.linear", "ansible.builtin.ssh", False, "vanilla Ansible, pipelining off"),
        Variant("vanilla_pipelining", "ansible.builtin.linear", "ansible.builtin.ssh", True, "vanilla Ansible, pipelining on"),
        Variant("mitogen_linear", "ns.mitogen.linear", MITOGEN_SSH, False, "ns.mitogen linear strategy + ssh"),
        Variant("mitogen_free", "ns.mitogen.free", MITOGEN_SSH, False, "ns.mitogen free strategy + ssh"),
        Variant("mitogen_host_pinned", "ns.mitogen.host_pinned", MITOGEN_SSH, False, "ns.mitogen host_pinned strategy + ssh"),
        Variant("builtin_linear_mitogen_ssh", "ansible.builtin.linear", MITOGEN_SSH, False, "builtin linear + ns.mitogen.ssh"),
        Variant("builtin_free_mitogen_ssh", "ansible.builtin.free", MITOGEN_SSH, False, "builtin free + ns.mitogen.ssh"),
        Variant(
            "builtin_host_pinned_mitogen_ssh",
            "ansible.builtin.host_pinned",
            MITOGEN_SSH,
            False,
            "builtin host_pinned + ns.mitogen.ssh",
        ),
        Variant(
            "builtin_linear_mitogen_ssh_preload",
            "ansible.builtin.linear",
            MITOGEN_SSH,
            False,
            "builtin linear + ns.mitogen.ssh + the ns.mitogen.preload callback",
            ("ns.mitogen.preload",),
        ),
    )
}
#: The variant every other one is compared with.
BASELINE = "vanilla"
#: Playbooks about one plugin's own logic, not a run loop or a release: compared in CI
#: under these variants, on the main release only (NSM_FULL_MATRIX=1: every variant and
#: release). copy_branches walks each branch of copy's action (its one round trip:
#: plugin_utils/_speculation.py); files and check_diff cover copy everywhere.
NARROW_PLAYBOOKS = ("copy_branches",)
NARROW_VARIANTS = ("mitogen_linear", "builtin_linear_mitogen_ssh")


def get_variant(variant: Variant | str) -> Variant:
    """The Variant for a name (or the Variant itself); KeyError names the known ones."""
    if isinstance(variant, Variant):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise KeyError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})") from None


def ansible_bin_dir(venv: Path | str | None = None) -> Path:
    """The bin directory whose ansible-playbook/ansible-doc the runs use.

    venv: a virtualenv with ansible-core; default $NSM_ANSIBLE_VENV, else the
    virtualenv running this process.  ValueError if it has no ansible-playbook.
    """
    venv = venv or os.environ.get(ANSIBLE_VENV_ENV)
    bin_dir = Path(venv).resolve() / "bin" if venv else Path(sys.executable).parent
    if not (bin_dir / "ansible-playbook").exists():
        raise ValueError(f"no ansible-playbook in {bin_dir} (is {venv or sys.prefix} a virtualenv with ansible-core?)")
    return bin_dir


def _clean_environ() -> dict[str, str]:
    """os.environ without anything that would steer Ansible or the capture."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NSM_DIFF_"))}


def ansible_doc(kind: str, name: str, bin_dir: Path | None = None, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `ansible-doc [options] -t kind name` with the repo's collection path (output captured)."""
    with tempfile.TemporaryDirectory(prefix="nsm-diff-doc-") as home:
        env = {**_clean_environ(), "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_HOME": home, "ANSIBLE_NOCOLOR": "1"}
        return subprocess.run(
            [str((bin_dir or ansible_bin_dir()) / "ansible-doc"), *options, "-t", kind, name],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@functools.lru_cache(maxsize=None)
def plugin_resolves(kind: str, name: str, bin_dir: Path | None = None) -> bool:
    """True if `ansible-doc -t kind name` succeeds with the repo's collection path."""
    return ansible_doc(kind, name, bin_dir).returncode == 0


def unavailable_reason(variant: Variant | str, bin_dir: Path | None = None) -> str | None:
    """None if every plugin of the variant resolves, else e.g. "ns.mitogen.ssh not built yet"."""
    bin_dir = bin_dir or ansible_bin_dir()
    for kind, name in get_variant(variant).plugins:
        if not plugin_resolves(kind, name, bin_dir):
            return f"{name} not built yet"
    return None


# -- playbooks ------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookMeta:
    """Harness settings of a playbook (its first play's `vars: {nsm_diff: {...}}`).

    verbosity: number of -v for both sides (4 gives the -vvvv log).
    secrets: strings that must appear nowhere in the capture file or the log.
    rc: the exit status ansible-playbook must end with.
    vault_password: written to a file in the run dir and given to
        ansible-playbook with --vault-password-file (for `!vault` values).
    hosts: how many testbed hosts the inventory holds (h1, h2, ...: more than
        HOSTS needs a bigger testbed than the session's).
    """

    verbosity: int = 0
    secrets: tuple[str, ...] = ()
    rc: int = 0
    vault_password: str | None = None
    hosts: int = len(HOSTS)

    def host_names(self) -> tuple[str, ...]:
        """The inventory hosts of the playbook's runs."""
        return tuple(f"h{i}" for i in range(1, self.hosts + 1))


def playbooks() -> list[Path]:
    """Every test case: playbooks/*.yml, sorted."""
    return sorted(PLAYBOOK_DIR.glob("*.yml"))


def playbook_meta(playbook: Path) -> PlaybookMeta:
    """Read the `nsm_diff` settings of a playbook (defaults when absent)."""
    plays = yaml.safe_load(playbook.read_text()) or []
    settings: Mapping[str, Any] = {}
    if plays and isinstance(plays[0], dict):
        settings = (plays[0].get("vars") or {}).get("nsm_diff") or {}
    unknown = set(settings) - {"verbosity", "secrets", "rc", "vault_password", "hosts"}
    if unknown:
        raise ValueError(f"{playbook.name}: unknown nsm_diff settings {sorted(unknown)}")
    hosts = int(settings.get("hosts", len(HOSTS)))
    if hosts < 1:
        raise ValueError(f"{playbook.name}: nsm_diff.hosts must be at least 1, got {hosts}")
    vault_password = settings.get("vault_password")
    return PlaybookMeta(
        verbosity=int(settings.get("verbosity", 0)),
        secrets=tuple(str(s) for s in settings.get("secrets", ())),
        rc=int(settings.get("rc", 0)),
        vault_password=None if vault_password is None else str(vault_password),
        hosts=hosts,
    )


# -- targets --------------------------------------------------------------------


def reset_targets(tb: Testbed, hosts: Iterable[str] = HOSTS) -> None:
    """Remove what runs leave on the hosts: /tmp/nsm-diff and every ~/.ansible.

    Works on the controller-side views of each host's private /tmp, /home and /root.
    """
    target_rel = Path(TARGET_DIR).relative_to("/tmp")
    for name in hosts:
        host = tb[name]
        shutil.rmtree(host.tmp_dir / target_rel, ignore_errors=True)
        homes = [p for p in host.home_dir.iterdir() if p.is_dir() and not p.is_symlink()]
        for home in [*homes, host.root_home_dir]:
            shutil.rmtree(home / ".ansible", ignore_errors=True)


# -- running --------------------------------------------------------------------


@dataclass
class RunResult:
    """What one ansible-playbook run produced."""

    variant: str
    playbook: Path
    rc: int
    records: list[dict[str, Any]]
    stats: dict[str, dict[str, int]]
    run_dir: Path
    log_path: Path
    capture_path: Path
    argv: list[str] = field(default_factory=list)
    #: command lines of processes the run left behind (ssh masters aside,
    #: which are closed): killed by reaper.py, and reported here
    leftovers: list[str] = field(default_factory=list)

    def log(self) -> str:
        """The run's stdout+stderr."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def describe(self) -> str:
        """One line naming the run, for failure messages."""
        return f"{self.playbook.name} under {self.variant} (rc={self.rc}, log {self.log_path})"


def ssh_common_args(tb: Testbed) -> list[str]:
    """Client options that use only the testbed's files (nothing of ~/.ssh is read or written)."""
    return [
        "-F",
        "/dev/null",
        "-o",
        f"UserKnownHostsFile={tb.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        # speed only: the default post-quantum key exchange costs ~0.1 s of CPU per
        # connection, and vanilla without pipelining opens several per task
        "-o",
        "KexAlgorithms=curve25519-sha256",
    ]


def inventory(tb: Testbed, variant: Variant, hosts: Sequence[str] = HOSTS, python: str = PYTHON) -> dict[str, Any]:
    """The YAML inventory (as a dict) of one run."""
    common = shlex.join(ssh_common_args(tb))
    host_vars = {
        name: {
            "ansible_host": tb[name].address,
            "ansible_port": tb[name].port,
            "ansible_user": tb.users.sudo.name,
            "ansible_ssh_private_key_file": str(tb.key),
            "ansible_python_interpreter": python,
            "ansible_connection": variant.connection,
            "ansible_ssh_args": SSH_ARGS,
            "ansible_ssh_common_args": common,
        }
        for name in hosts
    }
    return {"all": {"hosts": host_vars}}


def _environment(variant: Variant, run_dir: Path, control_dir: Path, capture: Path, config: Path) -> dict[str, str]:
    return {
        **_clean_environ(),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(run_dir / "ansible_home"),
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "local_tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join((CALLBACK_NAME, *variant.callbacks)),
        "ANSIBLE_STRATEGY": variant.strategy,
        "ANSIBLE_PIPELINING": "True" if variant.pipelining else "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        CAPTURE_ENV: str(capture),
    }


def read_capture(path: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """(result records, stats per host) from a capture file."""
    records: list[dict[str, Any]] = []
    stats: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fp:
        for line in fp:
            record = json.loads(line)
            if record["kind"] == "stats":
                stats[record["host"]] = record["stats"]
            else:
                records.append(record)
    return records, stats


def run_playbook(
    tb: Testbed,
    playbook: Path | str,
    variant: Variant | str,
    work_dir: Path,
    *,
    hosts: Sequence[str] | None = None,
    verbosity: int | None = None,
    reset: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    bin_dir: Path | None = None,
    python: str = PYTHON,
    collections_paths: Sequence[Path] = (),
    inventory_data: Mapping[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> RunResult:
    """Run `playbook` on `hosts` under `variant`; return every captured result.

    The run gets its own directory under work_dir (inventory, config, local
    temp, ANSIBLE_HOME, capture, log, and `nsm_diff_run_dir` for the playbook's
    controller-side files); the extra vars also give `nsm_diff_target_dir` and
    `nsm_diff_known_hosts` (the testbed's, for playbooks that set their own ssh
    options).  reset: wipe the targets first (`reset_targets`).
    hosts: the inventory (default: the playbook's nsm_diff.hosts).
    verbosity: number of -v (default: the playbook's nsm_diff.verbosity).
    bin_dir: where ansible-playbook is (default `ansible_bin_dir()`).
    python: the targets' ansible_python_interpreter.
    collections_paths: searched for collections before the repo's own link farm.
    inventory_data: the inventory to use instead of `inventory()`'s (e.g. with
        intermediaries: then `extra_args` may `--limit` the run to `hosts`).
    extra_args: more ansible-playbook arguments.
    A non-zero exit status is returned, not raised; a timeout or a missing
    capture raises RunError.
    """
    v = get_variant(variant)
    playbook = Path(playbook) if Path(playbook).is_absolute() else PLAYBOOK_DIR / playbook
    meta = playbook_meta(playbook)
    if verbosity is None:
        verbosity = meta.verbosity
    if hosts is None:
        hosts = meta.host_names()
    if reset:
        reset_targets(tb, hosts)
    work_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{v.name}-", dir=work_dir))
    inv, config, extra = run_dir / "inventory.yml", run_dir / "ansible.cfg", run_dir / "extra_vars.json"
    capture, log_path = run_dir / "capture.jsonl", run_dir / "ansible.log"
    inv.write_text(json.dumps(inventory(tb, v, hosts, python) if inventory_data is None else inventory_data, indent=2))
    config.write_text("# empty: every setting comes from the environment the harness sets\n")
    extra.write_text(
        json.dumps(
            {"nsm_diff_run_dir": str(run_dir), "nsm_diff_target_dir": TARGET_DIR, "nsm_diff_known_hosts": str(tb.known_hosts)}
        )
    )
    argv = [
        str((bin_dir or ansible_bin_dir()) / "ansible-playbook"),
        "-i",
        str(inv),
        "-e",
        f"@{extra}",
        *extra_args,
        str(playbook),
    ]
    if meta.vault_password is not None:
        vault_file = run_dir / "vault-password"
        vault_file.write_text(meta.vault_password + "\n")
        vault_file.chmod(0o600)
        argv += ["--vault-password-file", str(vault_file)]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    # ControlPath sockets need a short directory (sun_path holds 108 bytes)
    control_dir = Path(tempfile.mkdtemp(prefix="nsm-diff-cp-"))
    env = _environment(v, run_dir, control_dir, capture, config)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([*map(str, collections_paths), str(COLLECTIONS)])
    rc, leftovers = _run_reaped(argv, run_dir, env, log_path, control_dir, timeout)
    if rc is None:
        raise RunError(f"{playbook.name} under {v.name} did not finish in {timeout:g} s (log {log_path})")
    if not capture.exists():
        raise RunError(
            f"{playbook.name} under {v.name} wrote no capture (rc={rc}); log:\n{log_path.read_text(errors='replace')[-4000:]}"
        )
    records, stats = read_capture(capture)
    callback_failure = CALLBACK_FAILURE_RE.search(log_path.read_text(errors="replace"))
    if callback_failure:  # the capture misses results: comparing it would prove nothing
        raise RunError(f"{playbook.name} under {v.name}: the capture callback failed: {callback_failure[0]} (log {log_path})")
    return RunResult(v.name, playbook, rc, records, stats, run_dir, log_path, capture, argv, leftovers)


def _run_reaped(
    argv: list[str], cwd: Path, env: Mapping[str, str], log_path: Path, control_dir: Path, timeout: float
) -> tuple[int | None, list[str]]:
    """Run argv under reaper.py (output to log_path): (exit status or None on timeout, leftovers)."""
    report = cwd / "reaper.json"
    command = [sys.executable, str(REAPER), str(report), str(control_dir), "--", *argv]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:  # timeout or interrupt
            proc.terminate()  # the reaper kills everything below it, then exits
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            return None, []
    if not report.exists():
        raise RunError(f"reaper.py wrote no report (rc={proc.returncode}); log:\n{log_path.read_text(errors='replace')[-4000:]}")
    data = json.loads(report.read_text())
    return data["rc"], list(data["leftovers"])
