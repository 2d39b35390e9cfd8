"""A command run on a pseudo-terminal, for the tests that drive pyhot (or
pytest) as a person at a terminal would: read what it prints, type, see
how it exits."""
import os
import pty
import re
import select
import signal
import time


class Term:
    """A command on a pseudo-terminal, as a person runs it: the terminal
    is its controlling one, so \\x03 written to it is a Ctrl-C. cwd: its
    folder; env: variables added to ours."""

    def __init__(self, argv, cwd=None, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                full = {k: v for k, v in os.environ.items() if k not in ("PYHOT_TRACE",)}
                full["NO_COLOR"] = "1"
                full.update(env or {})
                if cwd:
                    os.chdir(cwd)
                os.execve(argv[0], argv, full)
            finally:
                os._exit(127)
        self.argv0 = argv[0]
        self.buf = ""
        self.status = None

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            return None
        self.buf += chunk.decode(errors="replace").replace("\r\n", "\n")
        return True

    def wait_for(self, pattern, timeout=15, start=0):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, start)
            if m:
                return m.end()
            left = deadline - time.monotonic()
            if left <= 0 or self.read(left) is None:
                raise AssertionError("no %r in:\n%s" % (pattern, self.buf))

    def wait_exit(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self.read(0.05):
                    pass
                self.status = status
                return status
            self.read(0.05)
        raise AssertionError("%s did not exit:\n%s" % (self.argv0, self.buf))

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
        os.close(self.fd)
