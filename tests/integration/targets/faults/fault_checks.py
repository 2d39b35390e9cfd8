"""What the fault tests (test_faults_*.py) check of a target after an
attach that went wrong on purpose: alive, not traced or stopped, every
thread's signal mask as it was, still working, and open to a new attach."""
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT_TARGET = os.path.join(HERE, "fault_target.py")


def task_masks(pid):
    """{tid: SigBlk} of every thread of pid."""
    masks = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("SigBlk:"):
                        masks[int(tid)] = line.split()[1]
        except OSError:
            pass
    return masks


def task_states(pid):
    """{tid: state letter} of every thread of pid."""
    states = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                states[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return states


def settle(t, timeout=3.0):
    """Wait until no thread of t is traced or stopped; fail if one stays so."""
    deadline = time.monotonic() + timeout
    while True:
        states = task_states(t.pid)
        if t.tracer() == 0 and not any(s in "tT" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError("pid %d still traced (%s) or stopped: %s\n%s" % (
                t.pid, t.tracer(), states, t.output()))
        time.sleep(0.005)


def check_intact(t, masks, what):
    """t lives, nothing traced or stopped, the masks of the threads in
    masks (tid -> SigBlk) unchanged, and it goes on working."""
    assert t.proc.poll() is None, "%s: target died (rc %s)\n%s" % (
        what, t.proc.poll(), t.output())
    settle(t)
    # A thread let go in the middle of a call finishes it, then restores
    # itself: give it a moment.
    deadline = time.monotonic() + 3.0
    while True:
        now = task_masks(t.pid)
        changed = {tid: (now[tid], blk) for tid, blk in masks.items()
                   if tid in now and now[tid] != blk}
        if not changed:
            break
        assert time.monotonic() < deadline, "%s: SigBlk (now, before) %s\n%s" % (
            what, changed, t.output())
        time.sleep(0.005)
    t.assert_working(more=2)
