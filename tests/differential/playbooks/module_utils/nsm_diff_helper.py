# A module_util that lives next to the playbook (not in ansible-core): modules
# import it as ansible.module_utils.nsm_diff_helper.


def greet(name):
    return "hello %s from a playbook-adjacent module_util" % name
