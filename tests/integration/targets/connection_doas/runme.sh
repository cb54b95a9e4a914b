#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.doas:
# the controller's own account ansible_become_user, reached with doas.
# ansible-test runs this with the hosts of test_connection.inventory; the pytest wrapper
# (tests/integration/test_hop_connections.py) sets NSM_CONNECTION_INVENTORY to an
# inventory naming the testbed's accounts instead.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh doas --shared-tmp "$@"
