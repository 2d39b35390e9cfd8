"""A Python target for pyhot's integration tests: set up, say ready, work.

    python target.py MODE [ARG]

Modes (what the main thread does once it has said "ready"):
  busy      a pure Python loop
  sleep     time.sleep(3600); a helper thread ticks
  join      join() on a worker thread that ticks
  select    select() on a socket a helper thread writes to
  threads8  eight busy threads, the main thread busy too
  stuck     waits for the file ARG to exist, then sleeps 30 s in C holding
            the GIL (ctypes.PyDLL keeps the GIL)
  ticker    a thread ticks every 1 ms and records the largest gap; the main
            thread sleeps; "gap" on stdin prints and resets it (bench.py)

Every mode prints "tick N" lines while it works and "ERROR ..." (then exits
1) when something the test should see goes wrong: an exception, a sleep
that returned early, select() failing.
"""
import os
import select
import socket
import sys
import threading
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "busy"
arg = sys.argv[2] if len(sys.argv) > 2 else None
lock = threading.Lock()
count = [0]


def say(*words):
    with lock:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def tick():
    count[0] += 1
    say("tick", count[0])


def fail(what):
    say("ERROR", what)
    os._exit(1)


def guarded(fn):
    def run():
        try:
            fn()
        except BaseException as e:  # noqa: B902 - the test wants to see it
            fail("%s: %r" % (fn.__name__, e))
    return run


def ticker_thread(period=0.02):
    def loop():
        while True:
            time.sleep(period)
            tick()
    t = threading.Thread(target=guarded(loop), name="ticker", daemon=True)
    t.start()
    return t


def busy_loop():
    n, last = 0, time.monotonic()
    while True:
        n += 1
        if n & 0x3FFF == 0:
            now = time.monotonic()
            if now - last >= 0.02:
                last = now
                tick()


def main():
    say("ready", os.getpid(), sys.version.split()[0])
    if mode == "busy":
        busy_loop()
    elif mode == "sleep":
        ticker_thread()
        t0 = time.monotonic()
        time.sleep(3600)
        fail("sleep returned after %.3f s" % (time.monotonic() - t0))
    elif mode == "join":
        worker = ticker_thread()
        worker.join()
        fail("join returned")
    elif mode == "select":
        a, b = socket.socketpair()

        def writer():
            while True:
                time.sleep(0.02)
                b.send(b"x")
        threading.Thread(target=guarded(writer), daemon=True).start()
        while True:
            r, _, _ = select.select([a], [], [])
            if a not in r:
                fail("select returned without the socket")
            if not a.recv(1):
                fail("socket closed")
            tick()
    elif mode == "threads8":
        def spin():
            x = 0
            while True:
                x += 1
        for i in range(8):
            threading.Thread(target=guarded(spin), name="busy-%d" % i,
                             daemon=True).start()
        busy_loop()
    elif mode == "stuck":
        import ctypes
        libc = ctypes.PyDLL(None)
        ticker_thread(0.05)
        while not os.path.exists(arg):
            time.sleep(0.005)
        say("stuck")
        libc.sleep(30)
        say("unstuck")
        time.sleep(3600)
    elif mode == "ticker":
        gap = [0.0]

        def loop():
            last = time.perf_counter()
            while True:
                time.sleep(0.001)
                now = time.perf_counter()
                if now - last > gap[0]:
                    gap[0] = now - last
                last = now
        threading.Thread(target=guarded(loop), name="ticker", daemon=True).start()
        for line in sys.stdin:
            if line.strip() == "gap":
                g, gap[0] = gap[0], 0.0
                say("gap", "%.6f" % g)
    else:
        fail("unknown mode " + mode)


guarded(main)()
