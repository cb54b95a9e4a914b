#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.setns:
# a container on this machine, entered by its init process's namespaces (needs root and
# a running container; test_connection.inventory names a docker container "nsm-setns").
# The pytest wrapper (tests/integration/test_connection_targets.py) sets
# NSM_CONNECTION_INVENTORY to an inventory naming a podman container of its own.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh setns "$@"
