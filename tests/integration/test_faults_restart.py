"""A main thread blocked in a system call that a ptrace stop would turn
into EINTR (recv, accept, recvmsg with SO_RCVTIMEO; epoll_wait with a
timeout) never sees it: pyhot rewinds the call or does not stop the
thread. The target checks each call's result and errno through ctypes
(targets/faults/fault_target.py) and says ERROR on anything but a
timeout."""
import os
import sys

import pytest

from conftest import DEFAULT_PY, pyhot

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "targets", "faults"))
from fault_checks import FAULT_TARGET, check_intact, task_masks  # noqa: E402

ROUNDS = int(os.environ.get("PYHOT_FAULT_ROUNDS", "50"))


@pytest.mark.parametrize("mode", ["recv", "accept", "recvmsg", "epoll"])
def test_no_eintr_after_attaches(target, mode):
    t = target(mode, python=DEFAULT_PY, script=FAULT_TARGET)
    masks = task_masks(t.pid)
    for i in range(ROUNDS):
        r = pyhot("attach", t.pid)
        assert r.rc == 0, (i, r, t.output())
        r = pyhot("detach", t.pid)
        assert r.rc == 0, (i, r, t.output())
        assert "ERROR" not in t.output(), (i, t.output())
    check_intact(t, masks, "%s after %d attaches" % (mode, ROUNDS))
