"""A target for the truthful-refresh tests: imports a test's modules, then
runs code the test sends it, in its own main thread.

    python app.py DIRS [MODULE...]

DIRS (joined with os.pathsep) go first on sys.path; each MODULE is imported
before "ready". Then the main thread reads requests that a helper thread
takes from stdin, one a line:

    SEQ CODE          CODE is a JSON string of Python source

and answers each with one line:

    done SEQ VALUE    VALUE is the JSON of the value of the last expression
                      (None for a statement; repr() of what JSON cannot hold)
    fail SEQ TEXT     TEXT is the JSON string of the traceback

The code runs in one namespace kept across requests (so a test can hold a
reference from before a refresh in it) in which `m` is importlib's
import_module. The main thread wakes every 10 ms, so a pending call made by
pyhot's agent runs soon. Modules may print lines of their own.
"""
import ast
import importlib
import json
import os
import queue
import sys
import threading
import traceback

lock = threading.Lock()


def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def evaluate(code, ns):
    """Run code in ns; the value of its last statement when that is an
    expression, else None."""
    tree = ast.parse(code, "<test>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<test>", "exec"), ns)
    return eval(compile(last, "<test>", "eval"), ns) if last else None


def answer(seq, code, ns):
    try:
        value = evaluate(code, ns)
    except BaseException:  # noqa: B902 - the test wants to see it
        say("fail %s %s" % (seq, json.dumps(traceback.format_exc())))
        return
    say("done %s %s" % (seq, json.dumps(value, default=repr)))


def read_requests(requests):
    for line in sys.stdin:
        seq, _, code = line.strip().partition(" ")
        requests.put((seq, json.loads(code)))
    requests.put(None)


def main():
    for d in reversed(sys.argv[1].split(os.pathsep)):
        sys.path.insert(0, d)
    for name in sys.argv[2:]:
        importlib.import_module(name)
    requests = queue.Queue()
    threading.Thread(target=read_requests, args=(requests,), name="stdin",
                     daemon=True).start()
    ns = {"m": importlib.import_module}
    say("ready %d %s" % (os.getpid(), sys.version.split()[0]))
    while True:
        try:
            request = requests.get(timeout=0.01)
        except queue.Empty:
            continue
        if request is None:
            return
        answer(request[0], request[1], ns)


main()
