#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.buildah.
# ansible-test runs this with the hosts of test_connection.inventory; the pytest wrapper
# (tests/integration/test_connection_targets.py) sets NSM_CONNECTION_INVENTORY to an
# inventory of testbed hosts instead.
set -eux
cd "$(dirname "$0")"
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
trap 'rm -rf "$local_tmp"' EXIT
ansible-playbook ../connection/test_connection.yml -i "$inventory" \
    -e target_hosts=buildah -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-buildah "$@"
