"""A stand-in for the pyhot agent, to test the CLI's client on its own.

    python fake_agent.py RESPONSES.json|'{...}'

Listens where the real agent would (/tmp/pyhot-EUID/agent-PID.sock), speaks
the frame protocol of common/pyhot_proto.h, and answers each verb with the
canned JSON object RESPONSES[verb] (or an "unknown verb" error). Every
request is printed as "request VERB key=value ...". "delay_s" in a canned
response delays the answer. "detach" removes the socket and exits the loop.
"""
import json
import os
import socket
import struct
import sys
import time

arg = sys.argv[1]
responses = json.loads(arg) if arg.startswith("{") else json.load(open(arg))
d = "/tmp/pyhot-%d" % os.geteuid()
os.makedirs(d, mode=0o700, exist_ok=True)
path = "%s/agent-%d.sock" % (d, os.getpid())
try:
    os.unlink(path)
except OSError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
os.chmod(path, 0o600)
srv.listen(8)
print("ready", os.getpid(), flush=True)


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


while True:
    c, _ = srv.accept()
    try:
        n = struct.unpack("<I", recv_exact(c, 4))[0]
        parts = recv_exact(c, n).split(b"\0")[:-1]
        verb = parts[0].decode()
        kv = [(parts[i].decode(), parts[i + 1].decode()) for i in range(1, len(parts), 2)]
        print("request", verb, " ".join("%s=%s" % p for p in kv), flush=True)
        resp = dict(responses.get(verb) or {
            "ok": False, "error": {"kind": "failed", "step": verb,
                                   "message": "%s: unknown verb '%s'" % (verb, verb)}})
        delay = resp.pop("delay_s", 0)
        if delay:
            time.sleep(delay)
        resp.setdefault("proto", 1)
        body = json.dumps(resp).encode()
        c.sendall(struct.pack("<I", len(body)) + body)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass
    finally:
        c.close()
    if verb == "detach":
        os.unlink(path)
        srv.close()
        print("detached", flush=True)
        time.sleep(3600)
