"""Targets of tests/integration/test_cli_interrupt.py: one stuck thread each.

argv: MODE GO_FILE. The stuck part starts when GO_FILE exists (so that the
test attaches first); SIGINT gets Python's default handler, whatever the
test runner's was (a background shell ignores it), except in the modes
that test another disposition.
"""
import os
import re
import signal
import sys
import threading
import time

mode, go = sys.argv[1], sys.argv[2]
if mode == "sigint-ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
elif mode == "sigint-own":
    def on_sigint(signum, frame):
        print("own handler ran", flush=True)
    signal.signal(signal.SIGINT, on_sigint)
else:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)


def spin():
    wait_go()
    print("spinning", flush=True)
    try:
        n = 0
        while True:
            n += 1
    except KeyboardInterrupt:
        print("spinner caught KeyboardInterrupt", flush=True)


r, w = os.pipe()


def reader():
    print("reading", flush=True)
    try:
        data = os.read(r, 1)
        total = 0
        for i in range(200000):   # Python again: a stray exception would fire here
            total += i
        print("reader got %r, then counted to %d" % (data, total), flush=True)
    except BaseException as e:
        print("ERROR reader got %s" % type(e).__name__, flush=True)


def tick_forever():
    n = 0
    while True:
        if mode == "blocked" and n == 5 and os.path.exists(go + ".unblock"):
            os.write(w, b"x")
        n = n + 1 if n < 5 else 5
        print("tick", flush=True)
        time.sleep(0.05)


if mode == "spin":
    threading.Thread(target=spin, name="spinner", daemon=True).start()
elif mode == "blocked":
    threading.Thread(target=reader, name="reader", daemon=True).start()
print("ready", flush=True)
wait_go()
try:
    if mode in ("sleep", "sigint-ignored", "sigint-own"):
        print("sleeping", flush=True)
        time.sleep(3600)
    elif mode == "regex":
        print("matching", flush=True)
        re.match(r"(a+)+$", "a" * 40 + "b")   # catastrophic backtracking
        print("ERROR the regex ended on its own", flush=True)
except KeyboardInterrupt:
    print("main caught KeyboardInterrupt", flush=True)
tick_forever()
