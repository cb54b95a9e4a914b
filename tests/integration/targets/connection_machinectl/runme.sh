#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through
# ns.mitogen.machinectl (setns of kind machinectl, as root), with the stand-in machinectl
# (tests/integration/standins/) first on PATH: it gives the leader pid of each machine
# in NSM_STANDIN_MACHINES (name=pid: a real container's init pid, which setns then
# enters). On a systemd host, run it with NSM_STANDINS=none and real machines.
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
    -e target_hosts=machinectl -e local_tmp="$local_tmp" -e remote_tmp=/tmp/nsm-connection-machinectl "$@"
