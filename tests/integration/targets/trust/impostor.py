"""An impostor agent: listens where the target's agent would and records
what reaches it, for tests/integration/test_trust_agent.py.

    python - SOCK LOG SETUP < impostor.py

Run as another user (or as the target's user in another process) inside
the target's private /tmp. SETUP makes the socket's directory first:
"mkdir" (0700, ours), "symlink" (a link to a directory of ours), "none"
(it is there already). Each connection appends "connection" to LOG, each
chunk of bytes received "data N"; every request gets a forged success, as
an attacker would send. LOG.ready says it listens. It dies with its parent
(the target).
"""
import ctypes
import json
import os
import signal
import socket
import struct
import sys

ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
sock, log, setup = sys.argv[1], sys.argv[2], sys.argv[3]
d = os.path.dirname(sock)
if setup == "mkdir":
    os.mkdir(d, 0o700)
elif setup == "symlink":
    os.mkdir("/tmp/evil", 0o700)
    os.symlink("/tmp/evil", d)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock)
srv.listen(8)


def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")


note("listening")
open(log + ".ready", "w").close()
forged = json.dumps({"proto": 1, "ok": True, "pid": os.getppid(), "baseline": True,
                     "python_version": "3.11.7", "stdout": "forged\n", "stderr": "",
                     "value": None}).encode()
while True:
    c, _ = srv.accept()
    note("connection")
    c.settimeout(1.0)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            note("data %d" % len(b))
            c.sendall(struct.pack("<I", len(forged)) + forged)
    except (OSError, socket.timeout):
        pass
    c.close()
