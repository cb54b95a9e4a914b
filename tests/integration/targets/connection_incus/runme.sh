#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.incus,
# with the stand-in engine (tests/integration/standins/) first on PATH: it checks the
# command line has the engine's shape and runs the command on this machine. Against a
# real engine, run it with NSM_STANDINS=none and an inventory of real instances.
set -eux
cd "$(dirname "$0")"
if [ "${NSM_STANDINS:-}" != none ]; then
    PATH="$(cd ../../standins && pwd):$PATH"
    export PATH
fi
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
trap 'rm -rf "$local_tmp"' EXIT
ansible-playbook ../connection/test_connection.yml -i "$inventory" \
    -e target_hosts=incus -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-incus "$@"
