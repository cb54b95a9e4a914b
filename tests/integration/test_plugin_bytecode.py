"""Our controller modules load with bytecode caching, not through Ansible's collection loader.

Ansible's loader compiles a collection's modules from source on every import;
``plugins/plugin_utils/__init__.py`` loads ours with the standard loader instead
(~60 ms less per ``ansible-playbook`` run, and per worker under built-in strategies).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = r"""
import importlib.machinery, importlib.util, json, sys
from ansible.plugins.loader import init_plugin_loader, strategy_loader, connection_loader
init_plugin_loader()
strategy_loader.get("ns.mitogen.linear", class_only=True)
connection_loader.get("ns.mitogen.ssh", class_only=True)
out = {}
for name in ("plugins.plugin_utils._mux_server", "plugins.plugin_utils._connection",
             "plugins.module_utils.mitogen._router", "plugins.module_utils.mitogen._stream"):
    mod = sys.modules["ansible_collections.ns.mitogen." + name]
    out[name] = {
        "standard_loader": isinstance(mod.__spec__.loader, importlib.machinery.SourceFileLoader),
        "file": mod.__file__,
        "cached": importlib.util.cache_from_source(mod.__file__),
    }
print(json.dumps(out))
"""


def _probe(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONDONTWRITEBYTECODE"}
    environ.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"),
        **env,
    )
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_controller_modules_are_loaded_by_the_standard_loader_and_cache_bytecode(tmp_path):
    found = _probe(tmp_path)
    for name, info in found.items():
        assert info["standard_loader"], name
        assert info["file"].startswith(os.path.join(ROOT, ".build", "collections")), info["file"]
        assert info["cached"].startswith(str(tmp_path / "pycache")), info["cached"]
        assert os.path.isfile(info["cached"]), "no bytecode cached for %s" % name


def test_no_bytecode_is_written_when_python_is_told_not_to(tmp_path):
    found = _probe(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    for name, info in found.items():
        assert info["standard_loader"], name
        assert not os.path.exists(info["cached"]), name
