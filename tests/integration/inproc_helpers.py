"""The target of the in-process agent tests (test_agent_inproc.py,
test_history.py): an interpreter that boots the payload itself.

A target is a real interpreter that loads the payload with ctypes and calls
pyhot_boot() itself, standing in for the injector. Its main thread then obeys
one-line commands on stdin, so that a test can put it in a given state (busy
in Python, asleep in time.sleep, waiting in join, stuck in C holding the
GIL) and talk to the agent's socket meanwhile. Every process is bounded by
timeouts and killed and reaped by Target.close().
"""

import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyhot_testlib import PAYLOAD, TESTS, request, start_target, stop_target  # noqa: E402


# The target. argv: payload path, socket path. Prints "READY <rc>" after the
# first boot, then "START <cmd>" / "END <cmd> <result>" around each command.
TARGET = r'''
import ctypes, os, sys, threading, time

# A user module next to the script, for the patch engine's baseline.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.path.exists(os.path.join(sys.path[0], "usermod.py")):
    import usermod

payload = ctypes.CDLL(sys.argv[1])
payload.pyhot_boot.argtypes = [ctypes.c_char_p]
payload.pyhot_boot.restype = ctypes.c_int

HISTORY = sys.argv[3] if len(sys.argv) > 3 else "3"

def boot(sock):
    return payload.pyhot_boot(("sock=" + sock + "\nhistory=" + HISTORY).encode())

def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()

def busy(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n

def spin(flag):
    """Run Python (no call that releases the GIL) until the test writes a
    byte into the file flag: it is mapped into memory, so looking at it is
    a plain memory read, and no other thread of ours ever wants the GIL."""
    import mmap
    with open(flag, "r+b") as f:
        m = mmap.mmap(f.fileno(), 1)
    say("SPINNING")
    end = time.monotonic() + 60
    n = 0
    while m[0] == 0:
        n += 1
        if n % 1000000 == 0 and time.monotonic() > end:
            break
    m.close()
    return n

children = []

def fork(child_sock, stop_file):
    # 3.12+ warns that the process has threads: the agent's is one. It is
    # expected here (and documented); any other output still fails a test.
    import warnings
    warnings.filterwarnings("ignore", "This process .* is multi-threaded",
                            DeprecationWarning)
    pid = os.fork()
    if pid == 0:
        try:
            rc = boot(child_sock)
            say("CHILD", os.getpid(), rc)
            end = time.monotonic() + 30
            while not os.path.exists(stop_file) and time.monotonic() < end:
                busy(0.01)
        finally:
            os._exit(0)
    children.append(pid)
    return pid

say("READY", boot(sys.argv[2]))
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    say("START", cmd[0])
    if cmd[0] == "busy":
        res = busy(float(cmd[1]))
    elif cmd[0] == "spin":
        res = spin(cmd[1])
    elif cmd[0] == "cblock":
        # Block in read() on a FIFO through PyDLL, which keeps the GIL: the
        # main thread is stuck in C until the test writes a byte.
        fd = os.open(cmd[1], os.O_RDWR)
        buf = ctypes.create_string_buffer(1)
        res = ctypes.PyDLL(None).read(fd, buf, 1)
        os.close(fd)
    elif cmd[0] == "sleep":
        time.sleep(float(cmd[1]))
        res = "slept"
    elif cmd[0] == "join":
        t = threading.Thread(target=time.sleep, args=(float(cmd[1]),))
        t.start()
        t.join()
        res = "joined"
    elif cmd[0] == "frames":
        # Make the status handler's call to sys._current_frames() slow or
        # failing, to see what the agent does with such a handler.
        if not hasattr(sys, "_orig_frames"):
            sys._orig_frames = sys._current_frames
        if cmd[1] == "sleep":
            delay = float(cmd[2])
            sys._current_frames = lambda: (time.sleep(delay), sys._orig_frames())[1]
        elif cmd[1] == "raise":
            def failing():
                raise RuntimeError("frames are off")
            sys._current_frames = failing
        else:
            sys._current_frames = sys._orig_frames
        res = cmd[1]
    elif cmd[0] == "boot":
        res = boot(cmd[1])
    elif cmd[0] == "fork":
        res = fork(cmd[1], cmd[2])
    elif cmd[0] == "reap":
        res = [os.waitpid(p, 0)[1] for p in children]
        del children[:]
    elif cmd[0] == "exit":
        if len(cmd) > 1:
            # Stay in Python a while during shutdown, after the interpreter
            # stopped taking pending calls (3.8) and before it is gone.
            # The loop runs Python for 50 ms between two stat() calls: a
            # thread that drops the GIL more often than every switch
            # interval (5 ms) starves the threads waiting for it (CPython's
            # convoy effect, bpo-7946), and on 3.8 at this point the agent
            # has only its GIL thread to reach Python with.
            import atexit
            def at_exit(stop=cmd[1]):
                say("ATEXIT")
                end = time.monotonic() + 30
                while not os.path.exists(stop) and time.monotonic() < end:
                    busy(0.05)
            atexit.register(at_exit)
        say("BYE")
        break
    else:
        res = "unknown"
    say("END", cmd[0], res)
'''


class Target:
    """A target interpreter with the agent booted in it."""

    def __init__(self, python, tmp_path, timeout=60.0, usermod=None, history=3):
        self.python = python
        self.dir = str(tmp_path)
        if usermod is not None:
            with open(os.path.join(self.dir, "usermod.py"), "w") as f:
                f.write(usermod)
        # The payload creates the socket's directory itself (0700).
        self.sock = os.path.join(self.dir, "sock", "agent-main.sock")
        script = os.path.join(self.dir, "target.py")
        with open(script, "w") as f:
            f.write(TARGET)
        self.stderr_path = os.path.join(self.dir, "target.stderr")
        self.stderr = open(self.stderr_path, "w+")
        self.deadline = time.monotonic() + timeout
        self.proc = start_target(
            [python, script, PAYLOAD, self.sock, str(history)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            cwd=self.dir)
        self.pid = self.proc.pid
        self.buf = b""
        self.lines = []
        line = self.expect("READY")
        self.boot_rc = int(line.split()[1])

    def readline(self, timeout=15.0):
        end = min(time.monotonic() + timeout, self.deadline)
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("target %d said nothing; stderr:\n%s"
                                   % (self.pid, self.stderr_text()))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("target %d exited (%s); stderr:\n%s"
                                   % (self.pid, self.proc.poll(), self.stderr_text()))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.decode()
        self.lines.append(line)
        return line

    def expect(self, word, timeout=15.0):
        while True:
            line = self.readline(timeout)
            if line.split()[:1] == [word]:
                return line

    def send(self, *words):
        self.proc.stdin.write((" ".join(str(w) for w in words) + "\n").encode())
        self.proc.stdin.flush()

    def start(self, *words):
        """Send a command and wait until the main thread is in it."""
        self.send(*words)
        self.expect("START")

    def finish(self, timeout=15.0):
        """Wait for the command in progress to end; returns its result."""
        return self.expect("END", timeout).split(" ", 2)[2]

    def run(self, *words, timeout=15.0):
        self.start(*words)
        return self.finish(timeout)

    def spin(self):
        """Start a busy Python loop in the main thread; returns a function
        that stops it."""
        flag = os.path.join(self.dir, "spin.%d" % len(self.lines))
        with open(flag, "wb") as f:
            f.write(b"\0")
        self.start("spin", flag)
        self.expect("SPINNING")
        # Let say()'s write (which drops the GIL) return: from then on the
        # main thread runs Python alone, and a safe point is reached only
        # through its pending call.
        time.sleep(0.1)

        def release():
            with open(flag, "r+b") as f:
                f.write(b"x")
            return self.finish()
        return release

    def block_in_c(self):
        """Make the main thread hold the GIL in C; returns a function that
        lets it go."""
        fifo = os.path.join(self.dir, "gil.%d" % len(self.lines))
        os.mkfifo(fifo)
        self.start("cblock", fifo)
        time.sleep(0.2)   # "START" is printed just before the call

        def release():
            with open(fifo, "wb") as f:
                f.write(b"x")
            return self.finish()
        return release

    def request(self, verb, args=(), **kw):
        return request(self.sock, verb, args, **kw)

    def stderr_text(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def exit(self, *words, timeout=15.0):
        """Ask the target to end normally; returns its exit status."""
        self.send("exit", *words)
        self.expect("BYE", timeout)
        self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def close(self):
        stop_target(self.proc, files=(self.stderr,))


# Connect as uid/gid 65534 (nobody) while keeping root's capabilities, so
# that the 0700 directory and the 0600 socket do not stop us first and the
# agent's SO_PEERCRED check is what is tested. SECBIT_NO_SETUID_FIXUP keeps
# the capability sets through setresuid.
OTHER_UID_CLIENT = r'''
import ctypes, os, socket, sys
sys.path.insert(0, sys.argv[2])
from pyhot_testlib import encode_request, frame
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP = 28, 1 << 2
if libc.prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0:
    sys.exit("prctl: errno %d" % ctypes.get_errno())
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(frame(encode_request("ping")))
    data = s.recv(4)
except (BrokenPipeError, ConnectionResetError):
    data = b""
print("uid=%d reply=%r" % (os.getuid(), data))
'''


def connect_as_other_uid(sock_path, timeout=20):
    """Run a client as uid 65534; returns its stdout (uid and what it got)."""
    return subprocess.run([sys.executable, "-c", OTHER_UID_CLIENT, sock_path, TESTS],
                          capture_output=True, text=True, timeout=timeout,
                          check=True).stdout


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


__all__ = ["Target", "connect_as_other_uid", "median"]
