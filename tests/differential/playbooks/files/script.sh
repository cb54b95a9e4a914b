#!/bin/sh
echo "script ran with $# args: $*"
echo "script stderr" >&2
id -un
exit 0
