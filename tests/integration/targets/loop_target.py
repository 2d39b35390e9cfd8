"""A single-threaded target whose only thread waits in epoll_wait with no
timeout, so that an attach must stop exactly that call (no other thread
to borrow or to rank first).

    python loop_target.py asyncio|epoll

  asyncio  an asyncio event loop reading lines from stdin; each line
           "ping N" is answered "pong N" (Python retries EINTR by itself
           (PEP 475), so what shows is any other failure: an OSError kills
           the loop and the process prints ERROR)
  epoll    libc epoll_wait(-1) on stdin through ctypes, so that the result
           and errno are the kernel's: anything but one ready event on fd
           0 prints "ERROR ..." (EINTR included); errno, set to a sentinel
           before the wait, must still hold it after a wait that succeeded

Prints "ready" first; the process exits 1 after an ERROR.
"""
import asyncio
import ctypes
import os
import select
import sys

SENTINEL = 4242


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def answer(line):
    line = line.strip()
    if line.startswith("ping"):
        say("pong" + line[4:])
    return line != "quit"


def loop_asyncio():
    loop = asyncio.new_event_loop()
    done = loop.create_future()

    def on_input():
        try:
            line = sys.stdin.readline()
            if not line or not answer(line):
                done.set_result(None)
        except Exception as e:   # the loop would swallow it
            done.set_exception(e)

    loop.add_reader(0, on_input)
    say("ready asyncio", loop.__class__.__name__, type(loop._selector).__name__)
    try:
        loop.run_until_complete(done)
    except Exception as e:
        say("ERROR", type(e).__name__, e)
        sys.exit(1)
    finally:
        loop.remove_reader(0)
        loop.close()


def loop_epoll():
    libc = ctypes.CDLL(None, use_errno=True)
    ep = select.epoll()
    ep.register(0, select.EPOLLIN)
    ev = (ctypes.c_uint32 * 4)()
    errno_loc = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_int))(
        ("__errno_location", libc))
    say("ready epoll")
    buf = b""
    while True:
        errno_loc()[0] = SENTINEL
        n = libc.epoll_wait(ep.fileno(), ev, 1, -1)
        e = ctypes.get_errno() if n < 0 else errno_loc()[0]
        if n != 1 or ev[1] != 0:
            say("ERROR epoll_wait returned %d (errno %d: %s)" % (
                n, e, os.strerror(e)))
            sys.exit(1)
        if e != SENTINEL:
            say("ERROR errno changed to %d (%s) across the wait" % (e, os.strerror(e)))
            sys.exit(1)
        chunk = os.read(0, 4096)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not answer(line.decode()):
                return


if __name__ == "__main__":
    {"asyncio": loop_asyncio, "epoll": loop_epoll}[sys.argv[1]]()
