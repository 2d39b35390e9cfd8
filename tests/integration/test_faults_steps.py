"""pyhot killed (or stopped) at each step of an attach in turn: every
ptrace request and every stop it waits for, through the test hook
PYHOT_TEST_HOOK=kill-self-at=N of the test build (build/pyhot-test-hooks;
build/pyhot has no hooks). The target must come out alive, untraced, with
its signal masks as they were, working, and open to a new attach. Both a
first attach (the payload loaded with dlopen) and a later one (the
payload mapped already) are covered.

PYHOT_FAULT_STEP_SIGNALS: "kill" (default) or "kill,stop" (make faults);
the later attach is covered with PYHOT_FAULT_LONG=1 (make faults) only."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, DEFAULT_PY, pyhot

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "targets", "faults"))
from fault_checks import FAULT_TARGET, check_intact, task_masks  # noqa: E402

HOOKS = os.path.join(BUILD, "pyhot-test-hooks")
SIGNALS = os.environ.get("PYHOT_FAULT_STEP_SIGNALS", "kill").split(",")


def hooked_attach(pid, hook, cont=None):
    """pyhot-test-hooks attach pid with PYHOT_TEST_HOOK=hook. A pyhot that
    stopped itself gets cont (SIGCONT or SIGKILL) 20 ms later."""
    env = dict(os.environ, PYHOT_TEST_HOOK=hook)
    p = subprocess.Popen([HOOKS, "attach", str(pid)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if cont:
        deadline = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % p.pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "T":
                        break
            except OSError:
                break
            time.sleep(0.002)
        time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(cont)
    try:
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


def count_steps(pid):
    rc, err = hooked_attach(pid, "count-steps")
    assert rc == 0, err
    m = re.search(r"test hook: (\d+) steps", err)
    assert m, err
    return int(m.group(1))


def fault_at_every_step(target, prepare, what):
    """For N = 1..steps: a target made ready by prepare(t), pyhot hit at
    step N, then the checks and a normal attach."""
    t = target("sleep", python=DEFAULT_PY, script=FAULT_TARGET)
    prepare(t)
    steps = count_steps(t.pid)
    t.kill()
    done = 0
    for sig in SIGNALS:
        for n in range(1, steps + 1):
            t = target("sleep", python=DEFAULT_PY, script=FAULT_TARGET)
            prepare(t)
            masks = task_masks(t.pid)
            if sig == "kill":
                rc, err = hooked_attach(t.pid, "kill-self-at=%d" % n)
            else:
                cont = signal.SIGKILL if n % 2 else signal.SIGCONT
                rc, err = hooked_attach(t.pid, "stop-self-at=%d" % n, cont)
            label = "%s: %s at step %d of %d: rc %s: %s" % (what, sig, n, steps, rc,
                                                           err.strip())
            assert "test hook: signal" in err, label
            check_intact(t, masks, label)
            r = pyhot("attach", t.pid)
            assert r.rc == 0, (label, r, t.output())
            t.kill()
            done += 1
    print("# %s: %d faults, one at each of %d steps; no target harmed" % (what, done, steps))


def fresh(t):
    pass


def payload_mapped(t):
    r = pyhot("attach", t.pid)
    assert r.rc == 0, r
    r = pyhot("detach", t.pid)
    assert r.rc == 0, r


@pytest.mark.parametrize("path", ["first", "again"])
def test_fault_at_every_step(target, path):
    if not os.path.exists(HOOKS):
        pytest.skip("no %s (make builds it with the tests)" % HOOKS)
    if path == "again" and not os.environ.get("PYHOT_FAULT_LONG"):
        pytest.skip("make faults runs it")
    if path == "first":
        fault_at_every_step(target, fresh, "first attach")
    else:
        fault_at_every_step(target, payload_mapped, "attach with the payload mapped")
