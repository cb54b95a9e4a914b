#!/bin/sh
# nsm-bench: a tiny script the play installs and runs
test -f /tmp/nsm-bench/app/conf/app.ini && echo healthy
