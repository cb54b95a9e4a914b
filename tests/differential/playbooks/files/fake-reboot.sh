#!/bin/sh
# A reboot for a testbed host, which is a network namespace and cannot boot:
# a new boot id for boot_time_command to read, then every process of this user
# on this host (its network namespace) is killed: the SSH sessions, the
# interpreters they run, and this script itself, as a reboot would.
# All at once: every other process is stopped first, then killed. Killed one by
# one in pid order, a command's shell could die before the process waiting for
# it (pids wrap around: pid_max may be 32768), which then reported the shell's
# death as the reboot command's exit status before it was killed itself.
set -e
boot_id="$1"
date +%s%N > "$boot_id"
others=$(pgrep -u "$(id -u)" --ns $$ --nslist net | grep -vx "$$" || true)
if [ -n "$others" ]; then
    # shellcheck disable=SC2086 # a pid per word: split on purpose
    kill -STOP $others 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -KILL $others 2>/dev/null || true
fi
exec pkill -KILL -u "$(id -u)" --ns $$ --nslist net
