#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.ssh
# behind a bastion (mitogen_via). ansible-test runs this with test_connection.inventory
# (localhost behind localhost); the pytest wrapper (tests/integration/
# test_connection_targets.py) sets NSM_CONNECTION_INVENTORY to testbed hosts, the target
# reachable only from the bastion.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh via "$@"
