# A module_util shipped in a role's module_utils/.


def role_greeting(name):
    return "hello %s from a role module_util" % name
