#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.su:
# the controller's own account ansible_become_user, reached with su.
# ansible-test runs this with the hosts of test_connection.inventory; the pytest wrapper
# (tests/integration/test_hop_connections.py) sets NSM_CONNECTION_INVENTORY to an
# inventory naming the testbed's accounts instead.
set -eux
cd "$(dirname "$0")"
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
chmod 0755 "$local_tmp"  # the su user reads the files to copy from here
trap 'rm -rf "$local_tmp"' EXIT
ansible-playbook ../connection/test_connection.yml -i "$inventory" \
    -e target_hosts=su -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-su "$@"
