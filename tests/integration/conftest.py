"""Fixtures for pyhot's integration tests: real pyhot against real Pythons.

- INTERPRETERS: every CPython >= 3.8 on the machine (real binaries, never the
  pyenv shim); OLD_INTERPRETERS: 3.6 / 3.7 if present (must be refused).
  These, the paths and the socket come from tests/pyhot_testlib.py.
- `target`: a factory that starts a Python process running a script, waits
  until it says "ready", and always kills and reaps it.
- `pyhot()`: run build/pyhot, with --json parsed when asked.

Every wait is bounded; nothing is left running or stopped.
"""
import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from pyhot_testlib import (BUILD, DEFAULT_PY, INTERPRETERS, OLD_INTERPRETERS,  # noqa: E402,F401
                           PYHOT, REPO, TARGET_PY, die_with_parent, finish, proc_state,
                           sock_path, start_target, stop_target)

TARGETS = os.path.join(HERE, "targets")

EXIT = {"ok": 0, "failed": 1, "usage": 2, "attach": 3, "uncertain": 4, "timeout": 124}


def interp_params():
    return [pytest.param(path, id=name) for name, path in INTERPRETERS]


@pytest.fixture(params=interp_params())
def python(request):
    return request.param


class Result:
    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.out, self.err, self.elapsed = args, rc, out, err, elapsed
        self.json = None

    def __repr__(self):
        return "pyhot %s -> %d\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.args), self.rc, self.out, self.err)


def pyhot(*args, env=None, timeout=30, json_out=False, prefix=(), check_json=True,
          exe=None):
    """Run build/pyhot (or exe). With json_out, add --json and parse stdout (exactly
    one object, "format":1, "exit" equal to the exit code)."""
    args = [str(a) for a in args]
    if json_out:
        args.append("--json")
    full_env = dict(os.environ)
    full_env.pop("PYHOT_TRACE", None)
    full_env.pop("NO_COLOR", None)
    if env:
        full_env.update(env)
    t0 = time.monotonic()
    p = subprocess.run(list(prefix) + [exe or PYHOT] + args, env=full_env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       universal_newlines=True)
    r = Result(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    if json_out and check_json:
        lines = [l for l in r.out.splitlines() if l.strip()]
        assert len(lines) == 1, r
        r.json = json.loads(lines[0])
        assert isinstance(r.json, dict), r
        assert r.json.get("format") == 1, r
        assert r.json.get("exit") == r.rc, r
        assert r.json.get("ok") == (r.rc == 0), r
        if r.rc:
            e = r.json["error"]
            assert e["message"] and EXIT[e["kind"]] == r.rc, r
    return r


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
_nobody_copy = []


def pyhot_for_nobody():
    """A copy of build/pyhot and its payload that user nobody can run (the
    checkout may sit in a 0700 directory), for pyhot(..., prefix=NOBODY,
    exe=...). Skips when setpriv is missing."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv missing")
    if not _nobody_copy:
        d = tempfile.mkdtemp(prefix="pyhot-nobody-")
        atexit.register(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        for name in ("pyhot", "pyhot-payload.so"):
            shutil.copy2(os.path.join(BUILD, name), d)
            os.chmod(os.path.join(d, name), 0o755)
        _nobody_copy.append(os.path.join(d, "pyhot"))
    return _nobody_copy[0]


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """A Python process under test. Lines of its stdout are collected by a
    thread; wait_for() polls them."""

    def __init__(self, argv, env=None, cwd=None):
        self.argv = argv
        self.proc = start_target(argv, env=env, pdeathsig=True, cwd=cwd,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, universal_newlines=True,
                                 bufsize=1)
        self.pid = self.proc.pid
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)   # EOF
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=10, start=0):
        """The first line from index start matching pattern (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if line is None:
                        raise AssertionError("pid %d exited (rc %s) before %r; output:\n%s" % (
                            self.pid, self.proc.poll(), pattern, self.output()))
                    if rx.search(line):
                        return line
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("pid %d: no %r within %.1f s; output:\n%s" % (
                        self.pid, pattern, timeout, self.output()))
                self.cond.wait(left)

    def ready(self, timeout=15):
        self.wait_for(r"^ready\b", timeout)
        return self

    def output(self):
        with self.cond:
            return "\n".join(l for l in self.lines if l is not None)

    def ticks(self):
        with self.cond:
            return sum(1 for l in self.lines if l and l.startswith("tick"))

    def assert_working(self, more=3, timeout=20):
        """The target goes on: `more` new ticks, no ERROR line, still alive."""
        with self.cond:
            start = len(self.lines)
        for _ in range(more):
            line = self.wait_for(r"^(tick|ERROR)", timeout, start)
            assert not line.startswith("ERROR"), self.output()
            with self.cond:
                start = self.lines.index(line, start) + 1
        assert self.proc.poll() is None, self.output()
        assert "ERROR" not in self.output(), self.output()
        assert "Traceback" not in self.output(), self.output()

    def state(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None

    def tracer(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
        return None

    def kill(self):
        stop_target(self.proc)


@pytest.fixture
def target():
    """target(mode, python=..., env=..., args=(), script=None, wait=True)"""
    started = []

    def start(mode="busy", python=None, env=None, args=(), script=None, wait=True,
              pyargs=(), cwd=None, private_tmp=None):
        """private_tmp "rw" or "ro": run in a mount namespace of its own with
        a fresh tmpfs on /tmp (read-only with "ro"); the pid stays the
        Python's (unshare and the shim exec)."""
        py = python or DEFAULT_PY
        argv = [py] + list(pyargs) + [script or TARGET_PY, mode] + [str(a) for a in args]
        if private_tmp:
            opts = "-o ro " if private_tmp == "ro" else ""
            # The script is opened before the tmpfs hides /tmp (a checkout
            # under /tmp would vanish with it) and run as /dev/fd/N.
            shim = ("import os, sys\n"
                    "i = %d\n"
                    "fd = os.open(sys.argv[i + 1], os.O_RDONLY)\n"
                    "os.set_inheritable(fd, True)\n"
                    "if os.system('mount -t tmpfs %stmpfs /tmp'):\n"
                    "    sys.exit('cannot mount /tmp')\n"
                    "argv = sys.argv[1:]\n"
                    "argv[i] = '/dev/fd/%%d' %% fd\n"
                    "os.execv(argv[0], argv)\n" % (1 + len(pyargs), opts))
            argv = ["unshare", "-m", "--propagation", "private", py, "-c", shim] + argv
        t = Target(argv, env=env, cwd=cwd)
        started.append(t)
        if wait:
            t.ready()
        return t

    yield start
    for t in started:
        t.kill()


@pytest.fixture
def procs():
    """Start any helper process (strace, sleep, ...) that is killed and reaped
    at the end: procs(argv, **popen_kwargs) -> Popen."""
    started = []

    def start(argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        kw.setdefault("preexec_fn", die_with_parent)
        p = subprocess.Popen(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        stop_target(p)


def wait_until(pred, timeout=10, step=0.005, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(step)
