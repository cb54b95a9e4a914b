"""A collection's module that imports its own collection's module_utils runs in RAM; respawn_module works.

The collection (tests/integration/collection_src: nsm_test.utils) is built and
installed with ansible-galaxy into a temporary collections path, as a user would
install it; its module imports a module_util from ``module_utils/`` (no
``__init__.py``) and one from ``module_utils/text/``, an implicit namespace package
as in community.general's ``module_utils/source_control``. The playbook runs under
vanilla Ansible and under ns.mitogen; the results must match, and ns.mitogen must
have run the module in the persistent interpreter. The collection's ``respawn_probe``
respawns itself on another Python (as dnf and apt do for their bindings), from the
interpreter and from a fork of the zygote, nothing written to the target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.differential import normalize, runner
from tests.integration.test_differential import check_run
from tests.testbed import Testbed
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "collection_src"
PLAYBOOK = HERE / "playbooks" / "collection_module_utils.yml"
GALAXY = Path(sys.executable).parent / "ansible-galaxy"
IN_PROCESS = "ns.mitogen RUN ansible_collections.nsm_test.utils.plugins.modules.greet in process"


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path holding nsm_test.utils, built and installed from its source."""
    work = tmp_path_factory.mktemp("nsm-test-collection")
    subprocess.run(
        [str(GALAXY), "collection", "build", "--output-path", str(work / "dist"), str(SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tarball,) = (work / "dist").glob("nsm_test-utils-*.tar.gz")
    subprocess.run(
        [str(GALAXY), "collection", "install", "-p", str(work / "cols"), str(tarball)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    installed = work / "cols" / "ansible_collections" / "nsm_test" / "utils"
    assert not (installed / "plugins" / "module_utils" / "text" / "__init__.py").exists()
    return work / "cols"


@pytest.mark.parametrize("variant", ["mitogen_linear", "builtin_linear_mitogen_ssh"])
def test_collection_module_utils_in_a_namespace_package_run_in_process(
    variant: str, collections: Path, testbed: Testbed, tmp_path: Path
) -> None:
    vanilla = runner.run_playbook(testbed, PLAYBOOK, "vanilla", tmp_path / "vanilla", collections_paths=[collections])
    check_run(vanilla)
    ours = runner.run_playbook(testbed, PLAYBOOK, variant, tmp_path / variant, collections_paths=[collections], verbosity=3)
    check_run(ours)
    assert normalize.compare(vanilla, ours) == []
    assert ours.log().count(IN_PROCESS) == 2, ours.log_tail()


@pytest.mark.parametrize("variant", ["mitogen_linear"])
def test_respawn_module_runs_the_module_again_on_another_python(
    variant: str, collections: Path, testbed: Testbed, tmp_path: Path
) -> None:
    python = pythons().get("3.12")
    if python is None:
        unavailable("pyenv's Python 3.12")
    playbook = tmp_path / "collection_respawn.yml"
    text = (HERE / "playbooks" / "collection_respawn.yml").read_text()
    playbook.write_text(
        text.replace("- name: respawn_module\n", "- name: respawn_module\n  vars:\n    respawn_python: %s\n" % python, 1)
    )
    vanilla = runner.run_playbook(testbed, playbook, "vanilla", tmp_path / "vanilla", collections_paths=[collections])
    check_run(vanilla)
    ours = runner.run_playbook(testbed, playbook, variant, tmp_path / variant, collections_paths=[collections], verbosity=3)
    check_run(ours)
    assert normalize.compare(vanilla, ours) == []
    log = ours.log()
    assert log.count("RUN ansible_collections.nsm_test.utils.plugins.modules.respawn_probe in process") == 2, ours.log_tail()
    assert log.count("RUN ansible_collections.nsm_test.utils.plugins.modules.respawn_probe in a fork") == 2, ours.log_tail()
