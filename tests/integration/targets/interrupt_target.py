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
        say("own handler ran")
    signal.signal(signal.SIGINT, on_sigint)
else:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def say(line):
    """One write per line: print() writes the newline apart, and two
    threads' lines would mix."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)


def spin():
    wait_go()
    say("spinning")
    try:
        n = 0
        while True:
            n += 1
    except KeyboardInterrupt:
        say("spinner caught KeyboardInterrupt")


r, w = os.pipe()


def reader():
    say("reading")
    try:
        data = os.read(r, 1)
        total = 0
        for i in range(200000):   # Python again: a stray exception would fire here
            total += i
        say("reader got %r, then counted to %d" % (data, total))
    except BaseException as e:
        say("ERROR reader got %s" % type(e).__name__)


def tick_forever():
    n = 0
    while True:
        if mode == "blocked" and n == 5 and os.path.exists(go + ".unblock"):
            os.write(w, b"x")
        n = n + 1 if n < 5 else 5
        say("tick")
        time.sleep(0.05)


def hold_gil():
    """libc sleep() through PyDLL: a C call that keeps the GIL."""
    import ctypes
    wait_go()
    say("holding")
    ctypes.PyDLL(None).sleep(4)
    say("released")


if mode == "spin":
    threading.Thread(target=spin, name="spinner", daemon=True).start()
elif mode == "gil-worker":
    threading.Thread(target=hold_gil, name="holder", daemon=True).start()
elif mode == "blocked":
    threading.Thread(target=reader, name="reader", daemon=True).start()
say("ready")
wait_go()
try:
    if mode in ("sleep", "sigint-ignored", "sigint-own"):
        say("sleeping")
        time.sleep(3600)
    elif mode == "regex":
        say("matching")
        re.match(r"(a+)+$", "a" * 40 + "b")   # catastrophic backtracking
        say("ERROR the regex ended on its own")
except KeyboardInterrupt:
    say("main caught KeyboardInterrupt")
tick_forever()
