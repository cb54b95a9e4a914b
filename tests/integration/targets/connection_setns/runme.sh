#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.setns:
# a container on this machine, entered by its init process's namespaces (needs root and
# a running container; test_connection.inventory names a docker container "nsm-setns").
# The pytest wrapper (tests/integration/test_connection_targets.py) sets
# NSM_CONNECTION_INVENTORY to an inventory naming a podman container of its own.
set -eux
cd "$(dirname "$0")"
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
trap 'rm -rf "$local_tmp"' EXIT
ansible-playbook ../connection/test_connection.yml -i "$inventory" \
    -e target_hosts=setns -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-setns "$@"
