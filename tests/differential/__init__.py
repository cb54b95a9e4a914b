"""Differential tests: the same playbooks under vanilla Ansible and ns.mitogen variants.

Module map: runner.py runs a playbook under a variant (the VARIANTS table) and
captures every result through the callback in callback/nsm_capture.py, with
reaper.py making sure no process of a run outlives it; normalize.py masks what
legitimately differs between runs (the rules in normalize.yml, each with its
reason) and compares two runs; playbooks/*.yml are the cases (one file, one
case; files/ and templates/ hold what they ship).  The tests are in
tests/integration/test_differential.py.
"""
