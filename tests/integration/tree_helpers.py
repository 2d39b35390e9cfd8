"""Helpers of the process-tree tests: a prefork server (targets/
prefork_target.py) in a temporary directory, asked over each process's own
socket which code it runs."""
import os
import signal
import socket
import time

import pytest

from conftest import TARGETS, pyhot
from pyhot_testlib import remove_socket

PREFORK = os.path.join(TARGETS, "prefork_target.py")

# The hook refuses the refresh in a process whose pid has a file
# "fail-PID" beside the module: one worker fails to apply, the others do.
APP = '''import os

HERE = os.path.dirname(os.path.abspath(__file__))


def __pyhot_before_refresh__():
    if os.path.exists(os.path.join(HERE, "fail-%%d" %% os.getpid())):
        raise RuntimeError("refused in pid %%d" %% os.getpid())


def answer():
    return "%s"
'''


class Prefork:
    """A master and its workers; .pids is the master first, then the
    workers in the order they were forked."""

    def __init__(self, target, python, tmp_path, workers=2, pool=False, app=None,
                 env=None, pyargs=()):
        self.dir = str(tmp_path)
        self.write("v1", app)
        args = [workers] + (["pool"] if pool else [])
        self.master = target(mode=self.dir, script=PREFORK, python=python, args=args,
                             env=env, pyargs=pyargs)
        self.pids = [self.master.pid]
        self.seen = 0
        self._take_workers(workers)

    def write(self, version, text=None):
        with open(os.path.join(self.dir, "app.py"), "w") as f:
            f.write(text if text is not None else APP % version)

    def _take_workers(self, count):
        import re
        rx = re.compile(r"^worker (\d+)$")
        lines = self.master.lines
        while count:
            self.master.wait_for(r"^worker \d+$", start=self.seen)
            while self.seen < len(lines):
                line = lines[self.seen]
                self.seen += 1
                m = rx.match(line or "")
                if m:
                    self.pids.append(int(m.group(1)))
                    count -= 1
                    break

    def fork(self):
        """One more worker, forked now; its pid, once it serves (it has run
        Python since the fork: its after-fork hooks have run)."""
        self.master.proc.stdin.write("fork\n")
        self.master.proc.stdin.flush()
        self._take_workers(1)
        self.ask(self.pids[-1])
        return self.pids[-1]

    def ask(self, pid):
        """What the process answers on its socket (it may still be binding
        it right after the fork)."""
        import time
        path = os.path.join(self.dir, "s-%d.sock" % pid)
        deadline = time.monotonic() + 10
        while True:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(10)
            try:
                c.connect(path)
                data = b""
                while True:
                    chunk = c.recv(100)
                    if not chunk:
                        return data.decode()
                    data += chunk
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                c.close()

    def answers(self):
        return {pid: self.ask(pid) for pid in self.pids}

    def fail_in(self, pid):
        open(os.path.join(self.dir, "fail-%d" % pid), "w").close()


    def kill_workers(self):
        """Kill the workers (the master's children, not ours: the master
        reaps them, or init once the master is killed) and remove their
        agents' sockets; wait until they are gone or zombies."""
        for pid in self.pids[1:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for pid in self.pids[1:]:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.01)
            remove_socket(pid)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture
def prefork(target, python, tmp_path):
    """prefork(workers=2, pool=False, app=None, env=None, pyargs=()): a
    Prefork on the test's interpreter (app: the first app.py's text instead
    of APP's v1; env and pyargs as the target fixture's);
    its workers are killed before the master (the target fixture's)."""
    made = []

    def make(workers=2, pool=False, app=None, env=None, pyargs=()):
        made.append(Prefork(target, python, tmp_path, workers=workers, pool=pool, app=app,
                            env=env, pyargs=pyargs))
        return made[-1]

    yield make
    for s in made:
        s.kill_workers()


def agents(pids):
    """pid -> whether an agent answers in it, from pyhot ps --json."""
    r = pyhot("ps", json_out=True)
    assert r.rc == 0, r
    by = {p["pid"]: p for p in r.json["processes"]}
    return {pid: by[pid]["agent"] for pid in pids}
