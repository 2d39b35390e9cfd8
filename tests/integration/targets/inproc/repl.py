"""A target driven line by line on stdin: each line is Python run in this
module's namespace; the value of `_` (or the error) comes back as one JSON
line. With PYHOT_TEST_NODUMP=1 it first makes itself non-dumpable, so that
ptrace and /proc by its own user are refused."""
import ctypes
import json
import os
import sys

if os.environ.get("PYHOT_TEST_NODUMP") == "1":
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)   # PR_SET_DUMPABLE, 0
sys.path.insert(0, os.getcwd())
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    ns = globals()
    ns["_"] = None
    try:
        exec(line, ns)
        out = {"ok": True, "value": ns["_"]}
    except BaseException as e:
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e),
               "report": getattr(e, "report", None)}
    print(json.dumps(out, default=repr), flush=True)
