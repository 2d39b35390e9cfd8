"""python -m pyhot run script.py [args] | run -m module [args]: run a
program with the pyhot agent started before its first import, so that
every module's baseline is the source it was loaded from and every `pyhot`
command works on it without ptrace."""

import os
import runpy
import sys

USAGE = """usage: python -m pyhot run script.py [args...]
       python -m pyhot run -m module [args...]

Runs the program with the pyhot agent already started (no ptrace needed):
`pyhot status|refresh|rollback|exec|watch PID` work on it at once."""


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] != "run" or len(argv) < 2 or (argv[1] == "-m" and len(argv) < 3):
        print(USAGE, file=sys.stderr)
        return 2
    import pyhot

    pyhot.start_agent(os.environ.get("PYHOT_HISTORY") or None)
    if argv[1] == "-m":
        sys.argv = [argv[2]] + argv[3:]
        spec = __import__("importlib.util").util.find_spec(argv[2])
        if spec is not None and spec.origin:
            pyhot._record_baseline("__main__", spec.origin)
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        return 0
    script = argv[1]
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    pyhot._record_baseline("__main__", script)
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
