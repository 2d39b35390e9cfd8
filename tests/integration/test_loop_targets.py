"""Targets whose only thread waits in epoll_wait (an asyncio loop, and the
call itself through ctypes): the attach must stop that very call, and the
program must find it as it was: no EINTR, no other errno (a rewound call
whose number was left at -EINTR fails with ENOSYS), the right result, its
errno untouched. Every interpreter."""
import os
import re
import signal

import pytest

from conftest import DEFAULT_PY, HERE, pyhot

LOOP_TARGET = os.path.join(HERE, "targets", "loop_target.py")


def ping(t, n):
    t.proc.stdin.write("ping %d\n" % n)
    t.proc.stdin.flush()
    t.wait_for(r"^(pong %d|ERROR)$" % n)
    assert "ERROR" not in t.output(), t.output()


@pytest.mark.parametrize("mode", ["asyncio", "epoll"])
def test_attach_into_a_loop_in_epoll_wait(target, python, mode):
    t = target(mode, python=python, script=LOOP_TARGET)
    ping(t, 0)
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, (r, t.output())
    # The one thread of the program was the one stopped (and borrowed).
    assert r.json["inject"]["tid"] == t.pid, r.json
    ping(t, 1)
    # The agent answers while the main thread sits in epoll_wait.
    r = pyhot("status", t.pid)
    assert r.rc == 0, (r, t.output())
    ping(t, 2)
    r = pyhot("detach", t.pid)
    assert r.rc == 0, (r, t.output())
    ping(t, 3)
    t.proc.stdin.write("quit\n")
    t.proc.stdin.flush()
    assert t.proc.wait(timeout=10) == 0, t.output()
    assert "ERROR" not in t.output() and "Traceback" not in t.output(), t.output()


def test_killed_at_every_step_of_an_attach_into_epoll_wait(target):
    """pyhot killed at each step of an attach in turn (the test build's
    hook, as in test_faults_steps.py) while the target's only thread waits
    in epoll_wait: the stop turned that call into EINTR, and from the step
    that rewinds it on, the rewind must already be in the thread's
    registers when pyhot dies. The target then answers, saw no EINTR, and
    takes a new attach. Killed between the interrupt and the rewind
    ("interrupted", "stopped": the thread's registers cannot be read before
    it stops), the EINTR stays: a window no rewind can close, checked to be
    that EINTR and nothing else (two steps at most)."""
    from test_faults_steps import count_steps, hooked_attach
    t = target("epoll", python=DEFAULT_PY, script=LOOP_TARGET)
    steps = count_steps(t.pid)
    t.kill()
    assert steps >= 5
    window = 0
    for n in range(1, steps + 1):
        t = target("epoll", python=DEFAULT_PY, script=LOOP_TARGET)
        rc, err = hooked_attach(t.pid, "kill-self-at=%d" % n)
        assert rc == -signal.SIGKILL, (n, rc, err)
        what = re.search(r"at step \d+ \((.*)\)", err).group(1)
        if what in ("interrupted", "stopped"):
            window += 1
            line = t.wait_for(r"^(pong %d|ERROR.*)$" % n, timeout=10) if ping_nowait(t, n) \
                else None
            assert line in (None, "pong %d" % n) or "(errno 4:" in line, (n, what, line)
            t.kill()
            continue
        ping(t, n)
        assert t.tracer() == 0, n
        r = pyhot("attach", t.pid)
        assert r.rc == 0, (n, what, r, t.output())
        ping(t, n + 1000)
        t.kill()
    assert window <= 2


def ping_nowait(t, n):
    try:
        t.proc.stdin.write("ping %d\n" % n)
        t.proc.stdin.flush()
        return True
    except OSError:
        return False
