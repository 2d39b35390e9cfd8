"""A driven target (targets/inproc/repl.py) for the in-process tests: run
Python in it line by line, read the value back."""
import json
import os
import subprocess

from conftest import BUILD, TARGETS, start_target, stop_target

PYPKG = os.path.join(BUILD, "python")
REPL = os.path.join(TARGETS, "inproc", "repl.py")


class Repl:
    def __init__(self, python, cwd, argv=None, env=None, prefix=()):
        env = dict(env or {})
        env.setdefault("PYTHONPATH", PYPKG)
        self.p = start_target(list(prefix) + [python] + (argv or [REPL]), env=env,
                              cwd=str(cwd), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, universal_newlines=True,
                              pdeathsig=not prefix)
        first = json.loads(self.p.stdout.readline())
        self.pid = first["ready"]

    def run(self, code, ok=True):
        self.p.stdin.write(code + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "target ended"
        out = json.loads(line)
        if ok is not None:
            assert out["ok"] == ok, out
        return out.get("value") if out["ok"] else out

    def close(self):
        stop_target(self.p)
