#!/usr/bin/python
# WANT_JSON
# A WANT_JSON module: its one argument is the path of a file holding the task's arguments as JSON.
import json
import sys

with open(sys.argv[1]) as fp:
    args = json.load(fp)
print(json.dumps({"changed": True, "style": "want_json", "name": args.get("name"), "count": args.get("count")}))
