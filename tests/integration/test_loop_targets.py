"""Targets whose only thread waits in epoll_wait (an asyncio loop, and the
call itself through ctypes): the attach must stop that very call, and the
program must find it as it was: no EINTR, no other errno (a rewound call
whose number was left at -EINTR fails with ENOSYS), the right result, its
errno untouched. Every interpreter."""
import os

import pytest

from conftest import HERE, pyhot

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
