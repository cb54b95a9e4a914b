#!/usr/bin/env bash
# The shared connection test (../connection/test_connection.yml) through ns.mitogen.lxd,
# with the stand-in engine (tests/integration/standins/) first on PATH: it checks the
# command line has the engine's shape and runs the command on this machine. Against a
# real engine, run it with NSM_STANDINS=none and an inventory of real instances.
set -eu
cd "$(dirname "$0")"
exec ../connection/run.sh lxd --standins "$@"
