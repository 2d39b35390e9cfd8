"""A target for the fault tests (test_faults_*.py): the main thread does
MODE over and over and checks every result; a helper thread prints
"tick N" every 20 ms.

    python fault_target.py MODE

Modes:
  busy     a pure Python loop
  sleep    time.sleep(0.05), which must not return early
  recv     libc recv() on a socket with SO_RCVTIMEO (0.2 s), through ctypes
  accept   libc accept() on a listening socket with SO_RCVTIMEO
  recvmsg  libc recvmsg() on a socket with SO_RCVTIMEO
  epoll    libc epoll_wait() with a 200 ms timeout
  caught   as sleep, with handlers for SIGURG and SIGWINCH that must never
           run (pyhot then cannot use either to end its calls)

The C calls go through ctypes so that the result and errno are the
kernel's, not Python's (which retries EINTR by itself): anything but a
timeout (-1 with EAGAIN, or 0 events) prints "ERROR ..." and exits 1, an
EINTR above all. Any exception does the same.
"""
import ctypes
import errno
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "busy"
out_lock = threading.Lock()
libc = ctypes.CDLL(None, use_errno=True)
TIMEO = struct.pack("ll", 0, 200000)


def say(*words):
    with out_lock:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def fail(what):
    say("ERROR", what)
    os._exit(1)


def ticker():
    n = 0
    try:
        while True:
            time.sleep(0.02)
            n += 1
            say("tick", n)
    except BaseException as e:  # noqa: B902 - the test wants to see it
        fail("ticker: %r" % (e,))


def check(call, r, ok_zero=False):
    """r is what a libc call returned: only a timeout is expected."""
    if r == 0 and ok_zero:
        return
    e = ctypes.get_errno()
    if r == -1 and e in (errno.EAGAIN, errno.EWOULDBLOCK):
        return
    fail("%s returned %d, errno %d (%s)" % (call, r, e, os.strerror(e)))


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def timed_socket():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, TIMEO)
    return a, b


def loop_recv():
    a, keep = timed_socket()
    buf = ctypes.create_string_buffer(16)
    while True:
        ctypes.set_errno(0)
        check("recv", libc.recv(a.fileno(), buf, 16, 0))


def loop_accept():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, TIMEO)
    while True:
        ctypes.set_errno(0)
        check("accept", libc.accept(s.fileno(), None, None))


def loop_recvmsg():
    a, keep = timed_socket()
    buf = ctypes.create_string_buffer(16)
    iov = Iovec(ctypes.cast(buf, ctypes.c_void_p), 16)
    while True:
        msg = Msghdr(None, 0, ctypes.pointer(iov), 1, None, 0, 0)
        ctypes.set_errno(0)
        check("recvmsg", libc.recvmsg(a.fileno(), ctypes.byref(msg), 0))


def loop_epoll():
    a, keep = socket.socketpair()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    events = ctypes.create_string_buffer(12 * 4)
    while True:
        ctypes.set_errno(0)
        check("epoll_wait", libc.epoll_wait(ep.fileno(), events, 4, 200), ok_zero=True)


def loop_sleep():
    while True:
        t0 = time.monotonic()
        time.sleep(0.05)
        if time.monotonic() - t0 < 0.049:
            fail("time.sleep(0.05) returned after %.4f s" % (time.monotonic() - t0))


def loop_caught():
    def handler(signum, frame):
        fail("handler of signal %d ran" % signum)

    signal.signal(signal.SIGURG, handler)
    signal.signal(signal.SIGWINCH, handler)
    loop_sleep()


def loop_busy():
    x = 0
    while True:
        x = (x * 31 + 7) % 1000003


def main():
    loops = {"busy": loop_busy, "sleep": loop_sleep, "recv": loop_recv,
             "accept": loop_accept, "recvmsg": loop_recvmsg, "epoll": loop_epoll,
             "caught": loop_caught}
    threading.Thread(target=ticker, daemon=True).start()
    say("ready", os.getpid())
    try:
        loops[mode]()
    except BaseException as e:  # noqa: B902 - the test wants to see it
        fail("%s: %r" % (mode, e))


main()
