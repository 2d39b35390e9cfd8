"""What the integration tests, the engine's scenario runner and the benchmark
share: where pyhot is built, the interpreters on the machine, the agent's
socket and its wire protocol, and starting and stopping a target process.

It lives in tests/ because scripts/bench.py already runs the tests' target
programs (tests/integration/targets/) and module (test_history.py): the
dependency goes one way, scripts to tests. Its users put this directory on
sys.path by their own path; it needs the standard library only (no pytest).
"""
import ctypes
import functools
import json
import os
import re
import signal
import socket
import struct
import subprocess

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
BUILD = os.environ.get("PYHOT_BUILD") or os.path.join(REPO, "build")
PYHOT = os.path.join(BUILD, "pyhot")
PAYLOAD = os.path.join(BUILD, "pyhot-payload.so")
TARGET_PY = os.path.join(TESTS, "integration", "targets", "target.py")
PROTO_H = os.path.join(REPO, "common", "pyhot_proto.h")

# ---- interpreters -----------------------------------------------------------

PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
# Debian's interpreter is linked statically (no libpython).
DEBIAN_PY = "/usr/bin/python3.11"


def _pyenv(version):
    """The real binary of a pyenv version (never the shim)."""
    major_minor = ".".join(version.split(".")[:2])
    return os.path.join(PYENV_ROOT, "versions", version, "bin", "python" + major_minor)


def _present(cands):
    return [(name, path) for name, path in cands
            if os.path.isfile(path) and os.access(path, os.X_OK)]


# [(name, path)] of every CPython >= 3.8 on the machine: the targets.
INTERPRETERS = _present([
    ("3.8", _pyenv("3.8.18")),
    ("3.9", _pyenv("3.9.18")),
    ("3.10", _pyenv("3.10.13")),
    ("3.11", _pyenv("3.11.7")),
    ("3.12", _pyenv("3.12.1")),
    ("3.13", _pyenv("3.13.0")),
    ("3.11-debian", DEBIAN_PY),
])
# Interpreters pyhot must refuse, if present.
OLD_INTERPRETERS = _present([
    ("3.7", _pyenv("3.7.16")),
    ("3.6", _pyenv("3.6.15")),
])
# The interpreter for work that needs just one: pyenv 3.11 (it has Flask).
DEFAULT_PY = dict(INTERPRETERS).get("3.11", INTERPRETERS[0][1] if INTERPRETERS else None)


def libpython(path):
    """The file interpreter path exports its C API from: its libpython, or
    the executable itself when it is linked statically."""
    if path == DEBIAN_PY:
        return path
    short = re.search(r"python(\d+\.\d+)$", path).group(1)
    lib = os.path.join(os.path.dirname(os.path.dirname(path)), "lib",
                       "libpython%s.so.1.0" % short)
    return lib if os.path.exists(lib) else None


# ---- the agent's socket -----------------------------------------------------

@functools.lru_cache(maxsize=None)
def _proto_string(name):
    """The string a #define of common/pyhot_proto.h stands for."""
    with open(PROTO_H) as f:
        m = re.search(r'^#define\s+%s\s+"([^"]*)"' % name, f.read(), flags=re.M)
    if not m:
        raise RuntimeError("no #define %s in %s" % (name, PROTO_H))
    return m.group(1)


def sock_path(pid, euid=None):
    """The agent's socket of process pid, as that process sees it
    (PYHOT_SOCK_DIR_FMT/PYHOT_SOCK_NAME_FMT; euid: the target's, ours by
    default, since we start the targets)."""
    fmt = _proto_string("PYHOT_SOCK_DIR_FMT") + "/" + _proto_string("PYHOT_SOCK_NAME_FMT")
    return fmt % (os.geteuid() if euid is None else euid, pid)


def proc_sock_path(pid):
    """The same socket reached from here, through the target's root (it may
    live in a mount namespace of its own), as the CLI does."""
    return "/proc/%d/root%s" % (pid, sock_path(pid))


def remove_socket(pid):
    """A killed agent cannot remove its socket: remove it for it."""
    try:
        os.unlink(sock_path(pid))
    except OSError:
        pass


def remove_stale_socket(pid):
    """A new process has no agent yet; a socket at its path was left by an
    earlier process with the same pid (killed, so it could not remove it).
    Removed only when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(sock_path(pid))
        except ConnectionRefusedError:
            remove_socket(pid)
        except OSError:
            pass


# ---- the wire protocol (common/pyhot_proto.h) ------------------------------

def frame(body):
    """One message: a 4-byte little-endian length, then the body."""
    return struct.pack("<I", len(body)) + body


def encode_request(verb, args=()):
    """A request body: verb NUL, then key NUL value NUL per (key, value)."""
    body = verb.encode() + b"\0"
    for k, v in args:
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    return body


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("agent closed the connection after %d of %d bytes"
                           % (len(data), n))
        data += chunk
    return data


def exchange(path, data, timeout=15.0):
    """Send data (bytes as they are, framed or not) to the socket at path;
    the JSON response, decoded."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        (n,) = struct.unpack("<I", recv_exact(s, 4))
        return json.loads(recv_exact(s, n).decode("utf-8"))


def request(path, verb, args=(), timeout=15.0):
    """One request to the agent listening at path; its response as a dict."""
    return exchange(path, frame(encode_request(verb, args)), timeout)


def agent_request(pid, verb, args=(), timeout=60.0):
    """One request to the agent of process pid, at its usual socket."""
    return request(proc_sock_path(pid), verb, args, timeout)


# ---- target processes -------------------------------------------------------

def target_env(extra=None, write_bytecode=True):
    """The environment of a target: ours without PYTHONPATH (it is the
    harness interpreter's, not the target's), with extra on top."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def die_with_parent():
    """In the child before exec: SIGKILL when the thread that started it
    dies, so that no target outlives a crashed or interrupted run
    (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def start_target(argv, env=None, write_bytecode=True, pdeathsig=False, **popen_kw):
    """Start a target process (Popen keywords as given; env: target_env's
    extra) and remove any stale socket at its pid's path. pdeathsig: it is
    killed when the thread that started it ends (die_with_parent)."""
    if pdeathsig:
        popen_kw["preexec_fn"] = die_with_parent
    p = subprocess.Popen(argv, env=target_env(env, write_bytecode), **popen_kw)
    remove_stale_socket(p.pid)
    return p


def proc_state(pid):
    """The state letter of pid (/proc/PID/stat: R, S, T...), "" once gone."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def finish(p, timeout=20):
    """p.communicate(timeout): (stdout, stderr); p killed and reaped when
    that raises or times out."""
    try:
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def stop_target(p, files=()):
    """Kill p if it still runs (SIGCONT too: it may be stopped), reap it
    (10 s at most), close its pipes and files, and remove its socket."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGKILL)
            os.kill(p.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for f in (p.stdin, p.stdout, p.stderr) + tuple(files):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
    remove_socket(p.pid)
