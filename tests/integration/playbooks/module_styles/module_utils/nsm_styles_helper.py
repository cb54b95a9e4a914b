# A module_util next to the playbook (not shipped by ansible-core).


def greeting(name):
    return "hello %s from a playbook module_util" % name
