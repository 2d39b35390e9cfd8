"""A prefork server for the process-tree tests: a master and its workers,
each answering over its own Unix socket with what its code says now.

    python prefork_target.py DIR WORKERS [pool]

DIR holds app.py (imported as "app"; app.answer() is what each process
serves) and gets the sockets: DIR/s-<pid>.sock, one per process. The master
forks WORKERS workers, prints "worker PID" for each and "ready", then reads
commands on stdin:
  fork      fork one more worker ("worker PID")
  ask       the master asks its workers itself and prints "answer PID TEXT"
With "pool", the workers are a multiprocessing.Pool (fork start method)
whose tasks each serve the socket of their process.

A connection gets app.answer() and is closed. Workers end when the master
does (PR_SET_PDEATHSIG, and they look every 0.2 s).
"""
import os
import socket
import sys
import threading

DIR = sys.argv[1]
WORKERS = int(sys.argv[2])
POOL = len(sys.argv) > 3 and sys.argv[3] == "pool"
sys.path.insert(0, DIR)
import app  # noqa: E402

MASTER = os.getpid()


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def listen():
    path = os.path.join(DIR, "s-%d.sock" % os.getpid())
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    s.settimeout(0.2)
    return s


def serve(s, until):
    """Answer connections until until() says stop; accept() blocks in C with
    the GIL released, as in a real server."""
    while not until():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        with c:
            try:
                c.sendall(str(app.answer()).encode())
            except Exception as e:  # noqa: B902 - the test reads it
                c.sendall(("ERROR %r" % e).encode())


def orphaned():
    return os.getppid() != MASTER


def die_with_master():
    """SIGKILL when the master goes (a Pool also forks replacements for
    killed workers, which would wait for tasks for ever)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)   # PR_SET_PDEATHSIG, SIGKILL
    if orphaned():
        os._exit(0)


def fork_worker():
    pid = os.fork()
    if pid == 0:
        try:
            die_with_master()
            serve(listen(), orphaned)
        finally:
            os._exit(0)
    say("worker", pid)
    return pid


def pool_task(_):
    """One per Pool process: serve its socket until the master is gone."""
    say("worker", os.getpid())
    serve(listen(), orphaned)
    os._exit(0)


def main():
    master_sock = listen()
    threading.Thread(target=serve, args=(master_sock, lambda: False),
                     daemon=True).start()
    if POOL:
        import multiprocessing
        ctx = multiprocessing.get_context("fork")
        pool = ctx.Pool(WORKERS, initializer=die_with_master)
        pool.map_async(pool_task, range(WORKERS), chunksize=1)
    else:
        for _ in range(WORKERS):
            fork_worker()
    say("ready")
    # os.read, not sys.stdin: a Pool forks replacement workers from a
    # thread of its own, and a child forked while this thread holds
    # sys.stdin's lock would hang in multiprocessing's _close_stdin().
    pending = b""
    while True:
        chunk = os.read(0, 4096)
        if not chunk:
            os._exit(0)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip() == b"fork":
                fork_worker()


main()
