#!/usr/bin/env bash
# What every connection_<type>/runme.sh runs: the shared connection test
# (test_connection.yml) for the hosts of group TYPE, with a fresh local temp directory.
#   run.sh TYPE [--standins] [--shared-tmp] [ansible-playbook args...]
# --standins: the stand-in engines (tests/integration/standins/) first on PATH, unless
#   NSM_STANDINS=none (a real engine, with an inventory of real instances);
# --shared-tmp: the local temp directory readable by other users (a become user reads
#   the files to copy from there).
# The inventory is test_connection.inventory beside the calling runme.sh, or
# $NSM_CONNECTION_INVENTORY (the pytest wrapper's testbed hosts).
set -eux
type=$1
shift
standins=no shared_tmp=no
while [ $# -gt 0 ]; do
    case $1 in
        --standins) standins=yes ;;
        --shared-tmp) shared_tmp=yes ;;
        *) break ;;
    esac
    shift
done
here=$(cd "$(dirname "$0")" && pwd)
if [ "$standins" = yes ] && [ "${NSM_STANDINS:-}" != none ]; then
    PATH="$(cd "$here/../../standins" && pwd):$PATH"
    export PATH
fi
inventory=${NSM_CONNECTION_INVENTORY:-test_connection.inventory}
local_tmp=$(mktemp -d)
trap 'rm -rf "$local_tmp"' EXIT
if [ "$shared_tmp" = yes ]; then
    chmod 0755 "$local_tmp"
fi
ansible-playbook "$here/test_connection.yml" -i "$inventory" \
    -e target_hosts="$type" -e local_tmp="$local_tmp" -e remote_tmp="/tmp/nsm-connection-$type" "$@"
