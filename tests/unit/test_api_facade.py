"""``api``, the core's one boundary for controller code, is a lazy facade (PEP 562).

Importing it loads none of the core's other modules; each name resolves, on first
use, to the object its private module defines - the same object everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _session, _transports, _wire, api


def test_every_exported_name_resolves_to_its_modules_object():
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert api.Session is _session.Session
    assert api.redacted is _transports.redacted and api.Message is _wire.Message
    assert set(api.__all__) <= set(dir(api))


def test_an_unknown_name_is_an_attribute_error():
    try:
        api.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("api.no_such_name resolved")


def test_importing_api_loads_no_other_core_module():
    code = (
        "import sys\n"
        "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api\n"
        "core = api.CORE_PACKAGE + '.'\n"
        "print(sorted(m for m in sys.modules if m.startswith(core)))\n"
    )
    collections = api.__file__.split(os.sep + "ansible_collections" + os.sep, maxsplit=1)[0]  # where the tests import it from
    env = dict(os.environ, PYTHONPATH=collections)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[%r]" % (api.CORE_PACKAGE + ".api")
