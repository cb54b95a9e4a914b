#!/usr/bin/python
# A JSON_ARGS module: its arguments are substituted for the marker below.
import json
import sys

args = json.loads("""<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>""")
print(json.dumps({"changed": False, "style": "json_args", "script": sys.argv[0], "word": args.get("word")}))
