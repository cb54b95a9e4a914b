#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.podman.
# ansible-test runs this with the hosts of test_connection.inventory; the pytest wrapper
# (tests/integration/test_connection_targets.py) sets NSM_CONNECTION_INVENTORY to an
# inventory of testbed hosts instead.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh podman "$@"
