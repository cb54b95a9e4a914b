#!/bin/sh
# A reboot for a testbed host, which is a network namespace and cannot boot:
# a new boot id for boot_time_command to read, then every process of this user
# on this host (its network namespace) is killed: the SSH sessions, the
# interpreters they run, and this script itself, as a reboot would.
set -e
boot_id="$1"
date +%s%N > "$boot_id"
exec pkill -KILL -u "$(id -u)" --ns $$ --nslist net
