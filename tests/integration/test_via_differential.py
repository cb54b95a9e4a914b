"""The differential suite's playbooks through a 3-hop ``mitogen_via`` chain.

controller -> bastion -> inner -> h1..h4, each hop reaching only the next
(``Testbed(private=...)``). Each playbook runs under vanilla Ansible, its hosts
reached with ssh's ProxyJump through bastion and inner (an ssh_config given with
``-F`` in ``ansible_ssh_common_args``: ssh hands ``-F`` to the jump hosts' ssh, not
``-o`` options), and under ``ns.mitogen.linear`` with ``mitogen_via=inner`` on the
targets and ``mitogen_via=bastion`` on inner, limited to the targets
(``--limit``: bastion and inner are in the inventory only to be named; the
implicit localhost stays in). The two
captures must be equal after the suite's normalization (tests/differential).

A host behind an intermediary is connected by an ssh that runs on the intermediary:
its inventory names no controller files (key, known_hosts), so that ssh uses the
account's own ``~/.ssh`` there (the testbed's key pair and known_hosts).

CI runs ``CI_PLAYBOOKS`` (a representative slice: commands, become on the targets, serial);
``NSM_VIA_PLAYBOOKS=all`` runs every playbook but those ``EXCLUDED`` says why
(``NSM_VIA_PLAYBOOKS=a.yml,b.yml``: those).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.differential import normalize, runner
from tests.integration.test_differential import check_run
from tests.testbed import Testbed
from tests.testbed.fixtures import unsupported_reason
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

TARGETS = ("h1", "h2", "h3", "h4")
CHAIN = {"inner": "bastion", **{t: "inner" for t in TARGETS}}  # host -> the host it is reached from
VARIANT = "mitogen_linear"
CI_PLAYBOOKS = ("command_shell.yml", "become.yml", "serial_hosts.yml")  # ~65 s together; files.yml alone ~50 s
EXCLUDED = {
    "ssh_options.yml": "its plays set ssh options naming controller files, which the hop behind a via reads on the intermediary",
    "no_python.yml": "a command without Python is not run through mitogen_via (the task says so)",
    "unreachable.yml": "its unreachable host is an address of the controller's network",
    "bad_input.yml": "a play sets its own ssh arguments (-F /dev/null, the controller's known_hosts), bypassing both chains",
    "passwords.yml": "a play sets its own ssh arguments (-F /dev/null, the controller's known_hosts), bypassing both chains",
    "synchronize.yml": "rsync runs on the controller and reaches the host with ssh options of its own",
}
ENV = "NSM_VIA_PLAYBOOKS"


def selected() -> list[Path]:
    wanted = os.environ.get(ENV, "")
    if wanted == "all":
        return [p for p in runner.playbooks() if p.name not in EXCLUDED]
    names = wanted.split(",") if wanted else CI_PLAYBOOKS
    return [runner.PLAYBOOK_DIR / name for name in names]


@pytest.fixture(scope="module")
def chain_testbed() -> Iterator[Testbed]:
    reason = unsupported_reason()
    if reason is not None:
        unavailable(reason)
    tb = Testbed(hosts=[*TARGETS, "bastion", "inner"], private=CHAIN)
    try:
        yield tb.start()
    finally:
        tb.close()


def _host(tb: Testbed, name: str, **more: Any) -> dict[str, Any]:
    return {
        "ansible_host": tb[name].address,
        "ansible_port": tb[name].port,
        "ansible_user": tb.users.sudo.name,
        "ansible_python_interpreter": runner.PYTHON,
        "ansible_ssh_args": runner.SSH_ARGS,
        **more,
    }


def vanilla_inventory(tb: Testbed, run_dir: Path, hosts: tuple[str, ...]) -> dict[str, Any]:
    """The targets through ProxyJump: bastion, then inner."""
    config = run_dir / "ssh_config"
    jump = "%s@%%s:%%d" % tb.users.key.name
    lines = []
    for name, via in CHAIN.items():
        lines += ["Host %s" % tb[name].address, "    ProxyJump " + jump % (tb[via].address, tb[via].port)]
    lines += [
        "Host *",
        "    IdentityFile %s" % tb.key,
        "    IdentitiesOnly yes",
        "    UserKnownHostsFile %s" % tb.known_hosts,
        "    GlobalKnownHostsFile /dev/null",
        "    StrictHostKeyChecking yes",
        "    BatchMode yes",
        "    KexAlgorithms curve25519-sha256",
    ]
    config.write_text("\n".join(lines) + "\n")
    common = shlex.join(["-F", str(config)])
    hosts_vars = {
        name: _host(tb, name, ansible_connection="ansible.builtin.ssh", ansible_ssh_common_args=common) for name in hosts
    }
    return {"all": {"hosts": hosts_vars}}


def via_inventory(tb: Testbed, hosts: tuple[str, ...]) -> dict[str, Any]:
    """bastion reached directly; inner with mitogen_via=bastion; the targets with mitogen_via=inner."""
    direct = shlex.join(runner.ssh_common_args(tb))
    # behind a via: the intermediary's own ~/.ssh (no -F /dev/null: the defaults there are wanted)
    behind = shlex.join(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
    conn = runner.VARIANTS[VARIANT].connection
    hosts_vars = {
        "bastion": _host(
            tb, "bastion", ansible_connection=conn, ansible_ssh_private_key_file=str(tb.key), ansible_ssh_common_args=direct
        ),
        "inner": _host(tb, "inner", ansible_connection=conn, ansible_ssh_common_args=behind, mitogen_via="bastion"),
    }
    for name in hosts:
        hosts_vars[name] = _host(tb, name, ansible_connection=conn, ansible_ssh_common_args=behind, mitogen_via="inner")
    return {"all": {"hosts": hosts_vars}}


@pytest.mark.parametrize("playbook", selected(), ids=lambda p: p.stem)
def test_same_results_through_a_three_hop_chain(playbook: Path, chain_testbed: Testbed, tmp_path: Path) -> None:
    tb = chain_testbed
    hosts = runner.playbook_meta(playbook).host_names()
    assert set(hosts) <= set(TARGETS), "%s wants more hosts than this chain has" % playbook.name
    cfg_dir = tmp_path / "vanilla-ssh"
    cfg_dir.mkdir()
    expected = runner.run_playbook(
        tb, playbook, runner.BASELINE, tmp_path / "vanilla", inventory_data=vanilla_inventory(tb, cfg_dir, hosts)
    )
    check_run(expected)
    actual = runner.run_playbook(
        tb,
        playbook,
        VARIANT,
        tmp_path / "via",
        inventory_data=via_inventory(tb, hosts),
        extra_args=["--limit", ",".join([*hosts, "localhost"])],  # localhost: the implicit one of some plays
    )
    check_run(actual)
    diffs = normalize.compare(expected, actual)
    if diffs:
        pytest.fail(
            f"{playbook.name}: {len(diffs)} difference(s) between vanilla with ProxyJump and mitogen_via "
            f"(logs: {expected.log_path}, {actual.log_path}):\n  " + "\n  ".join(diffs),
            pytrace=False,
        )
