"""A target for the safe-point tests and benchmark: the main thread does one
thing for ever, so that a test sees how a command reaches Python from it.

    python safepoint_target.py MODE

Modes (what the main thread does once it has printed "ready PID"):
  alone    a pure Python loop; no other thread of the program
  threads  the same loop, beside two threads that run Python loops too
  sleep    time.sleep(3600); no other thread
  select   select() on a socket nobody writes to; no other thread
  lock     Lock.acquire() on a lock nobody releases; no other thread

RECORD (in __main__) is a list for `pyhot exec` to append to, so that a
test can count how many times its code ran. A module spmod.py next to the
script, when there is one, is imported (for `pyhot refresh`).
"""
import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.path.exists(os.path.join(sys.path[0], "spmod.py")):
    import spmod  # noqa: F401 - the module a refresh patches

RECORD = []


def loop():
    n = 0
    while True:
        n += 1


def main(mode):
    if mode == "threads":
        for i in range(2):
            threading.Thread(target=loop, name="loop-%d" % i,
                             daemon=True).start()
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    if mode in ("alone", "threads"):
        loop()
    elif mode == "sleep":
        time.sleep(3600)
    elif mode == "select":
        a, b = socket.socketpair()
        select.select([a], [], [])
    elif mode == "lock":
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()
    sys.stdout.write("ERROR the main thread left %s\n" % mode)
    sys.stdout.flush()
    os._exit(1)


main(sys.argv[1])
