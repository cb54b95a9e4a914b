#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.ssh
# behind a bastion (mitogen_via). ansible-test runs this with test_connection.inventory
# (localhost behind localhost); the pytest wrapper (tests/integration/
# test_connection_targets.py) sets NSM_CONNECTION_INVENTORY to testbed hosts, the target
# reachable only from the bastion.
set -eux
cd "$(dirname "$0")"
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
trap 'rm -rf "$local_tmp"' EXIT
ansible-playbook ../connection/test_connection.yml -i "$inventory" \
    -e target_hosts=via -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-via "$@"
