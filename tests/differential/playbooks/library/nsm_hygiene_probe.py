# Reports what earlier tasks could have left behind in a reused interpreter.
import logging
import os
import subprocess
import threading

from ansible.module_utils.basic import AnsibleModule


def open_on(path):
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + name) == path:
                found += 1
        except OSError:
            pass
    return found


def main():
    module = AnsibleModule(argument_spec={})
    named = logging.getLogger("nsm.hygiene")
    module.exit_json(
        changed=False,
        popen_is_class=subprocess.Popen.__name__ == "Popen" and subprocess.Popen.__module__ == "subprocess",
        communicate_real=subprocess.Popen.communicate.__qualname__ == "Popen.communicate",
        environ_get_real=os.environ.get("NSM_HYGIENE_UNSET", "default") == "default",
        exists_real=os.path.exists("/"),
        echo=subprocess.run(["echo", "ok"], stdout=subprocess.PIPE, check=False).stdout.decode().strip(),
        left_threads=[t.name for t in threading.enumerate() if t.name == "nsm-left-thread"],
        root_level=logging.getLevelName(logging.getLogger().level),
        root_handlers=len(logging.getLogger().handlers),
        named_handlers=len(named.handlers),
        named_level=named.level,
        named_propagate=named.propagate,
        hostname_fds=open_on("/etc/hostname"),
    )


if __name__ == "__main__":
    main()
