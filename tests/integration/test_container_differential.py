"""Differential tests on containers: ns.mitogen.podman / docker against their counterparts.

The differential suite's playbooks that make sense in a container (no facts about a
real host, no ssh settings, no second account to log in as) run on two podman
containers named ``h1`` and ``h2`` in the inventory, first on the counterpart
(``containers.podman.podman`` or ``community.docker.docker``, from the ``ansible``
package: ``scripts/setup``) under ``ansible.builtin.linear``, then on ours under
``ns.mitogen.linear``; the captured results must be equal after the suite's
normalization, and each run must pass its own checks (``test_differential``).
The docker runs use the real docker CLI against podman's Docker-compatible API.

CI runs ``CI_SLICE``; the full matrix (``NSM_FULL_MATRIX=1``) every engine with every
one of ``PLAYBOOKS``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.differential import normalize, runner
from tests.differential.runner import Variant
from tests.integration.test_differential import check_run
from tests.testbed.containers import Podman
from tests.testbed.containers import unavailable_reason as containers_unavailable_reason

pytestmark = pytest.mark.testbed

# (engine, playbook) the default run takes (about a minute); the full matrix runs every pair
CI_SLICE = {("podman", "command_shell.yml"), ("podman", "files.yml"), ("docker", "command_shell.yml")}
# not raw_script.yml: its self-checks are ssh's (raw runs in the login shell sshd starts)
PLAYBOOKS = ["command_shell.yml", "files.yml", "loops_handlers.yml", "check_diff.yml", "module_styles.yml", "errors.yml"]
# engine -> (the counterpart's variant, ours)
VARIANTS = {
    "podman": (
        Variant("containers_podman", "ansible.builtin.linear", "containers.podman.podman", False, "containers.podman.podman"),
        Variant("mitogen_podman", "ns.mitogen.linear", "ns.mitogen.podman", False, "ns.mitogen.linear + ns.mitogen.podman"),
    ),
    "docker": (
        Variant("community_docker", "ansible.builtin.linear", "community.docker.docker", False, "community.docker.docker"),
        Variant("mitogen_docker", "ns.mitogen.linear", "ns.mitogen.docker", False, "ns.mitogen.linear + ns.mitogen.docker"),
    ),
}


@pytest.fixture(scope="module")
def engine() -> Iterator[Podman]:
    reason = containers_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    podman = Podman(state_dir=tempfile.mkdtemp(prefix="nsm-cdiff-", dir="/var/tmp"))
    try:
        podman.docker_api()
        yield podman
    finally:
        podman.close()


def _inventory(engine: Podman, kind: str, variant: Variant, containers: Dict[str, str]) -> Dict[str, Any]:
    extra = (
        {"ansible_podman_executable": engine.executable}
        if kind == "podman"
        else {"ansible_docker_extra_args": "--host %s" % engine.docker_host}
    )
    return {
        "all": {
            "hosts": {
                name: {
                    "ansible_host": container,
                    "ansible_connection": variant.connection,
                    "ansible_python_interpreter": runner.PYTHON,
                    **extra,
                }
                for name, container in containers.items()
            }
        }
    }


def _params():
    for kind in VARIANTS:
        for name in PLAYBOOKS:
            marks = () if (kind, name) in CI_SLICE else pytest.mark.slow
            yield pytest.param(kind, name, id="%s-%s" % (kind, Path(name).stem), marks=marks)


@pytest.mark.parametrize("kind,playbook", list(_params()))
def test_same_results_as_the_counterpart(engine: Podman, testbed, kind: str, playbook: str, tmp_path: Path) -> None:
    path = runner.PLAYBOOK_DIR / playbook
    hosts = runner.playbook_meta(path).host_names()
    results = []
    # the same containers for both runs (a file's device number is the container's),
    # reset between them as the suite resets its hosts
    containers = {h: engine.run("cdiff-%s-%s-%s" % (kind, Path(playbook).stem, h)) for h in hosts}
    for variant in VARIANTS[kind]:
        for container in containers.values():
            engine.exec(container, "rm", "-rf", runner.TARGET_DIR, "/root/.ansible")
        result = runner.run_playbook(
            testbed,
            path,
            variant,
            tmp_path / variant.name,
            hosts=hosts,
            reset=False,
            inventory_data=_inventory(engine, kind, variant, containers),
        )
        check_run(result)
        results.append(result)
    for container in containers.values():
        engine.remove(container)
    expected, actual = results
    diffs = normalize.compare(expected, actual)
    if diffs:
        pytest.fail(
            f"{playbook}: {len(diffs)} difference(s) between {expected.variant} and {actual.variant} "
            f"(logs: {expected.log_path}, {actual.log_path}):\n  " + "\n  ".join(diffs),
            pytrace=False,
        )
