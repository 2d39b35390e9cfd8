"""Process trees, end to end on every interpreter: a prefork server (a
master and workers forked before and after the attach, each serving over
its own socket) refreshed with one `pyhot refresh --tree`; a broken file
changes no process; a worker that fails to apply rolls every process back;
a child forked after the attach has an agent of its own with the parent's
baselines and history; subprocess's fork+exec gets none."""
import os
import signal
import time

from conftest import pyhot
from tree_helpers import _alive, agents, prefork  # noqa: F401 - the fixture


def test_refresh_tree_reaches_workers_forked_before_and_after_the_attach(prefork):
    s = prefork(2)
    r = pyhot("attach", s.master.pid)
    assert r.rc == 0, r
    late = s.fork()
    assert agents(s.pids) == {s.pids[0]: True, s.pids[1]: False, s.pids[2]: False,
                              late: True}
    assert set(s.answers().values()) == {"v1"}

    s.write("v2")
    r = pyhot("refresh", "--tree", s.master.pid, json_out=True)
    assert r.rc == 0, r
    procs = r.json["processes"]
    assert [p["pid"] for p in procs] == s.pids, r
    assert {p["outcome"] for p in procs} == {"refreshed"}, r
    assert all(p["ppid"] == s.master.pid for p in procs[1:]), r
    assert s.answers() == {pid: "v2" for pid in s.pids}
    s.master.assert_working(more=0)


def test_forked_child_keeps_the_parents_baselines_and_history(prefork):
    s = prefork(0)
    assert pyhot("attach", s.master.pid).rc == 0
    s.write("v2")
    r = pyhot("refresh", s.master.pid, "app")
    assert r.rc == 0, r
    child = s.fork()
    assert s.ask(child) == "v2"
    st = pyhot("status", child, json_out=True)
    assert st.rc == 0, st
    gens = st.json["status"]["history"]["generations"]
    assert [(g["module"], g["kind"]) for g in gens] == [("app", "refresh")], st
    # Its baseline is the parent's (v2, trusted): an edit made now is a change.
    s.write("v3")
    r = pyhot("refresh", child, "app", json_out=True)
    assert r.rc == 0, r
    assert "warning" not in r.json["modules"][0], r
    assert s.ask(child) == "v3" and s.ask(s.master.pid) == "v2"
    # And it can go back to the parent's generation.
    r = pyhot("rollback", child, "app")
    assert r.rc == 0, r
    assert s.ask(child) == "v2"


def test_broken_file_changes_no_process(prefork):
    s = prefork(2)
    assert pyhot("attach", s.master.pid).rc == 0
    s.fork()
    s.write("v2", text="def answer(:\n    return 'v2'\n")
    r = pyhot("refresh", "--tree", s.master.pid, json_out=True)
    assert r.rc == 1, r
    assert r.json["error"]["kind"] == "failed", r
    assert {p["outcome"] for p in r.json["processes"]} == {"plan-failed"}, r
    t = pyhot("refresh", "--tree", s.master.pid)
    assert t.rc == 1, t
    assert "nothing was applied in any process" in t.err, t
    assert "app.py" in t.err, t
    assert s.answers() == {pid: "v1" for pid in s.pids}


def test_worker_that_fails_to_apply_rolls_every_process_back(prefork):
    s = prefork(2)
    assert pyhot("attach", s.master.pid).rc == 0
    late = s.fork()
    bad = s.pids[1]
    s.fail_in(bad)
    s.write("v2")
    r = pyhot("refresh", "--tree", s.master.pid, json_out=True)
    assert r.rc == 1, r
    out = {p["pid"]: p["outcome"] for p in r.json["processes"]}
    assert out == {s.pids[0]: "rolled-back", bad: "failed", s.pids[2]: "rolled-back",
                   late: "rolled-back"}, r
    assert "refused in pid %d" % bad in r.json["processes"][1]["error"]["message"], r
    assert s.answers() == {pid: "v1" for pid in s.pids}
    t = pyhot("refresh", "--tree", s.master.pid)
    assert t.rc == 1, t
    assert "pid %d: refresh failed" % bad in t.err, t
    assert "were rolled back" in t.err, t
    assert s.answers() == {pid: "v1" for pid in s.pids}
    # Once the worker takes it, the same command applies everywhere.
    os.unlink(os.path.join(s.dir, "fail-%d" % bad))
    r = pyhot("refresh", "--tree", s.master.pid)
    assert r.rc == 0, r
    assert s.answers() == {pid: "v2" for pid in s.pids}


def test_subprocess_fork_exec_gets_no_agent(prefork):
    s = prefork(0)
    assert pyhot("attach", s.master.pid).rc == 0
    code = ("import subprocess, sys\n"
            "ps = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
            " preexec_fn=pre) for pre in (None, lambda: None)]\n"
            "print(' '.join(str(p.pid) for p in ps))\n")
    r = pyhot("exec", s.master.pid, "-c", code)
    assert r.rc == 0, r
    kids = [int(x) for x in r.out.split()]
    try:
        assert agents(kids) == {k: False for k in kids}
        sockdir = "/tmp/pyhot-%d" % os.geteuid()
        for k in kids:
            assert not os.path.exists(os.path.join(sockdir, "agent-%d.sock" % k))
    finally:
        for k in kids:
            os.kill(k, 9)


def test_detached_parent_forks_children_without_agent(prefork):
    s = prefork(0)
    assert pyhot("attach", s.master.pid).rc == 0
    assert pyhot("detach", s.master.pid).rc == 0
    child = s.fork()
    assert agents([s.master.pid, child]) == {s.master.pid: False, child: False}
    # Attached again, the next child has one.
    assert pyhot("attach", s.master.pid).rc == 0
    late = s.fork()
    assert agents([late]) == {late: True}


def test_sockets_of_exited_workers_are_removed(prefork):
    s = prefork(0)
    assert pyhot("attach", s.master.pid).rc == 0
    gone = s.fork()
    path = "/tmp/pyhot-%d/agent-%d.sock" % (os.geteuid(), gone)
    assert os.path.exists(path)
    os.kill(gone, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(gone) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.path.exists(path)          # nothing removed it when it died
    s.fork()                             # the next worker's agent does
    deadline = time.monotonic() + 10
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(path)
