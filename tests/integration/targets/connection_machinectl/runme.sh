#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through
# ns.mitogen.machinectl (setns of kind machinectl, as root), with the stand-in machinectl
# (tests/integration/standins/) first on PATH: it gives the leader pid of each machine
# in NSM_STANDIN_MACHINES (name=pid: a real container's init pid, which setns then
# enters). On a systemd host, run it with NSM_STANDINS=none and real machines.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh machinectl --standins "$@"
