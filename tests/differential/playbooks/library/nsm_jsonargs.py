#!/usr/bin/python
# A JSON_ARGS module: Ansible substitutes the task's arguments, as JSON, for the marker below.
import json
import os
import sys

json_arguments = """<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>"""
args = json.loads(json_arguments)
print(
    json.dumps(
        {
            "changed": False,
            "style": "jsonargs",
            "name": args.get("name"),
            "argv_len": len(sys.argv),
            "cwd_is_dir": os.path.isdir(os.getcwd()),
        }
    )
)
