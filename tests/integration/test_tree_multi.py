"""Several processes in one command, on every interpreter: a
multiprocessing.Pool (fork start method) refreshed with --tree; ps shows
the parent pid and the tree; status, exec and rollback with several pids;
the exit code when processes differ."""
import os
import re
import signal
import socket
import stat
import subprocess

from conftest import BUILD, pyhot, wait_until
from inproc_driver import PYPKG
from pyhot_testlib import die_with_parent, proc_state, remove_socket, sock_path
from tree_helpers import APP, agents, prefork  # noqa: F401 - the fixture

HOOKS = os.path.join(BUILD, "pyhot-test-hooks")


def kill_all(pids):
    """SIGKILL pids (gone already: fine) and remove their agents' sockets."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        remove_socket(pid)


def stale_socket(pid):
    """A socket file at pid's agent path that nobody listens on (what a
    killed agent leaves); its path."""
    path = sock_path(pid)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stale.bind(path)
        os.chmod(path, 0o600)
    finally:
        stale.close()    # the file stays; nobody listens
    return path


def test_refresh_tree_over_a_multiprocessing_pool(prefork):
    s = prefork(3, pool=True)
    assert set(s.answers().values()) == {"v1"}
    s.write("v2")
    r = pyhot("refresh", "--tree", s.master.pid, "app", json_out=True)
    assert r.rc == 0, r
    got = {p["pid"]: p["outcome"] for p in r.json["processes"]}
    for pid in s.pids:
        assert got.get(pid) == "refreshed", r
    assert s.answers() == {pid: "v2" for pid in s.pids}


def test_ps_shows_the_parent_and_the_tree(prefork):
    s = prefork(2)
    assert pyhot("attach", s.master.pid).rc == 0
    late = s.fork()
    r = pyhot("ps", json_out=True)
    assert r.rc == 0, r
    by = {p["pid"]: p for p in r.json["processes"]}
    for pid in s.pids[1:]:
        assert by[pid]["ppid"] == s.master.pid, r
    assert by[s.master.pid]["ppid"] == os.getpid() and by[late]["agent"], r
    t = pyhot("ps", "--tree")
    assert t.rc == 0, t
    lines = t.out.splitlines()
    assert lines[0].split()[:2] == ["PID", "PPID"], t
    master = [i for i, l in enumerate(lines) if re.match(r"^ *(`-)?%d " % s.master.pid, l)]
    assert master, t
    below = lines[master[0] + 1:master[0] + 5]
    assert "(3 children of %d)" % s.master.pid in below[0], t
    for pid, line in zip(s.pids[1:], below[1:]):
        assert re.match(r"^ *`-%d +%d " % (pid, s.master.pid), line), t
    assert below[3].split()[4] == "yes", t     # the late worker has an agent


def test_status_exec_rollback_with_several_pids(prefork):
    s = prefork(2)
    assert pyhot("attach", s.master.pid).rc == 0
    w1, w2 = s.pids[1], s.pids[2]
    r = pyhot("exec", s.master.pid, w1, w2, "-c", "import os, app; app.answer(), os.getpid()")
    assert r.rc == 0, r
    for pid in s.pids:
        assert "== pid %d ==\n('v1', %d)" % (pid, pid) in r.out, r

    s.write("v2")
    assert pyhot("refresh", "--tree", s.master.pid).rc == 0
    r = pyhot("status", "--tree", s.master.pid, json_out=True)
    assert r.rc == 0, r
    assert [p["pid"] for p in r.json["processes"]] == s.pids, r
    for p in r.json["processes"]:
        assert p["ok"] and p["status"]["history"]["generations"][0]["module"] == "app", r

    r = pyhot("rollback", w1, w2, "app", json_out=True)
    assert r.rc == 0, r
    assert [p["pid"] for p in r.json["processes"]] == [w1, w2], r
    assert s.answers() == {s.master.pid: "v2", w1: "v1", w2: "v1"}


def test_processes_that_differ_give_the_first_failure(prefork):
    s = prefork(1)
    assert pyhot("attach", s.master.pid).rc == 0
    w = s.pids[1]
    r = pyhot("exec", s.master.pid, w, "-c",
              "import os\nif os.getpid() == %d: raise ValueError('only here')" % w,
              json_out=True)
    assert r.rc == 1, r
    ok = {p["pid"]: p["exit"] for p in r.json["processes"]}
    assert ok == {s.master.pid: 0, w: 1}, r
    t = pyhot("exec", s.master.pid, w, "-c",
              "import os\nif os.getpid() == %d: raise ValueError('only here')" % w)
    assert t.rc == 1, t
    assert "ValueError: only here" in t.err, t
    assert "failed in 1 of 2 processes (pid %d)" % w in t.err, t


def test_bad_pids_and_stdin_change_nothing(prefork):
    s = prefork(1)
    r = pyhot("status", s.master.pid, "x1")
    assert r.rc == 2, r
    r = pyhot("refresh", "--tree", "0")
    assert r.rc == 2 and "--tree wants a process id" in r.err, r
    r = pyhot("exec", s.master.pid, s.pids[1], "-")
    assert r.rc == 2 and "one process only" in r.err, r
    assert s.answers() == {pid: "v1" for pid in s.pids}


def test_tree_of_a_shell_takes_its_python_children_only(python):
    code = "import os, time; os.write(1, b'ready\\n'); time.sleep(60)"
    sh = subprocess.Popen(["sh", "-c", '"$0" -c "%s" & "$0" -c "%s" & wait' % (code, code),
                           python], stdout=subprocess.PIPE, universal_newlines=True,
                          preexec_fn=die_with_parent)
    kids = []
    try:
        # Both have said ready: they run Python (not sh, not the loader).
        assert [sh.stdout.readline(), sh.stdout.readline()] == ["ready\n"] * 2
        with open("/proc/%d/task/%d/children" % (sh.pid, sh.pid)) as f:
            kids = sorted(int(k) for k in f.read().split())
        assert len(kids) == 2
        r = pyhot("exec", "--tree", sh.pid, "-c", "import os; os.getppid()", json_out=True)
        assert r.rc == 0, r
        assert sorted(r.json["pids"]) == kids, r
        assert all(p["ppid"] == sh.pid for p in r.json["processes"]), r
    finally:
        kill_all(kids)
        sh.kill()
        sh.wait()
        sh.stdout.close()


def test_a_socket_nobody_listens_on_does_not_make_the_tree_root_python(python):
    """--tree takes a root whose own agent listens for Python without
    reading its maps (cli/multi.c): a socket left at its agent path by an
    older process of that pid (nobody listens) does not make a shell a
    target. The shell is pid 1 of a new pid namespace, whose agent path
    (agent-1.sock, as it sees itself) is there before it starts."""
    code = "import os, time; os.write(1, b'ready\\n'); time.sleep(60)"
    remove_socket(1)
    stale_socket(1)
    wrap = subprocess.Popen(["unshare", "--pid", "--fork", "sh", "-c",
                             '"$0" -c "%s" & wait' % code, python],
                            stdout=subprocess.PIPE, universal_newlines=True,
                            preexec_fn=die_with_parent)
    kids = []
    try:
        assert wrap.stdout.readline() == "ready\n"
        with open("/proc/%d/task/%d/children" % (wrap.pid, wrap.pid)) as f:
            sh = int(f.read().split()[0])
        with open("/proc/%d/task/%d/children" % (sh, sh)) as f:
            kids = [int(k) for k in f.read().split()]
        assert len(kids) == 1
        r = pyhot("exec", "--tree", sh, "-c", "1", json_out=True)
        assert r.json["pids"] == kids, r
        assert r.rc == 0, r
    finally:
        kill_all(kids)
        remove_socket(1)
        remove_socket(2)    # the child's agent, pid 2 as it sees itself
        wrap.kill()
        wrap.wait()
        wrap.stdout.close()


def test_ctrl_c_waits_for_the_injection_under_way(prefork):
    """A Ctrl-C (SIGINT to the command) while one of its threads injects
    into a process of the tree: the command dies of it, but only once that
    thread is given back and its agent booted; no other attach starts. The
    signal goes to the whole command (the test build's int-self-at hook
    sends it from the injecting thread, as a terminal would to the process):
    without the command's signal thread, another thread takes it at once
    and the process in the middle of its attach gets no agent."""
    s = prefork(2, pool=True)     # three processes, none attached
    s.write("v2")
    env = dict(os.environ, PYHOT_TEST_HOOK="int-self-at=3")
    p = subprocess.run([HOOKS, "refresh", "--tree", str(s.master.pid), "app"], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == -signal.SIGINT, (p.returncode, p.stderr)
    assert "test hook: signal %d at step 3" % signal.SIGINT in p.stderr, p.stderr
    have = agents(s.pids)
    assert sum(1 for v in have.values() if v) == 1, (have, p.stderr)
    # Every process is whole and still runs the code it ran (nothing applied).
    assert s.answers() == {pid: "v1" for pid in s.pids}
    for pid in s.pids:
        assert pyhot("attach", pid).rc == 0


def test_an_attach_that_waited_for_its_turn_has_its_whole_timeout(prefork, tmp_path):
    """The attaches of a several-process command take turns (one
    injection at a time in the command: attach/inject.c's lock). Each
    still has its whole --timeout from its turn on, not from the command's
    start. The test build's hold-inject-ms makes every injection hold the
    turn 0.9 s longer: the third and fourth processes get their turns at
    1.8 and 2.7 s, their agents at 2.7 and 3.6 s, under a 2.5 s timeout.
    The app has 1500 modules of its own, whose files a new agent reads
    before it says its baseline is ready. Counted from the command's
    start, their timeout is spent when their agents first answer: the
    command does not wait for their baselines and warns that the source of
    their modules is not recorded."""
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    names = ["m%04d" % i for i in range(1500)]
    for n in names:
        (bulk / (n + ".py")).write_text("def f():\n    return %r\n" % n)
    (bulk / "__init__.py").write_text("".join("from . import %s\n" % n for n in names))
    s = prefork(3, app=APP % "v1" + "\nimport bulk  # noqa: E402,F401\n")
    s.write("v2", APP % "v2" + "\nimport bulk  # noqa: E402,F401\n")
    env = dict(os.environ, PYHOT_TEST_HOOK="hold-inject-ms=900")
    p = subprocess.run([HOOKS, "refresh", "--tree", str(s.master.pid), "app",
                        "--timeout", "2.5"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "warning" not in p.stderr and "warning" not in p.stdout, (p.stdout, p.stderr)
    assert all(agents(s.pids).values()), p.stdout
    assert s.answers() == {pid: "v2" for pid in s.pids}


def test_a_stale_socket_in_the_tree_is_attached_as_usual(prefork):
    """A tree refresh asks a process whose agent's socket is there at once,
    without a ping first (cli/steps.h). A socket file nobody listens on
    (left by a killed process whose pid came back) must not make that
    process fail: its step attaches as usual and refreshes it. Without the
    fall-back the worker's plan fails (connection refused) and nothing is
    applied anywhere."""
    s = prefork(2)     # three processes, none attached
    master, w1, w2 = s.pids
    assert pyhot("attach", master).rc == 0 and pyhot("attach", w1).rc == 0
    path = stale_socket(w2)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    s.write("v2")
    r = pyhot("refresh", "--tree", master, "app", json_out=True)
    assert r.rc == 0, r
    assert [p["outcome"] for p in r.json["processes"]] == ["refreshed"] * 3, r
    assert agents(s.pids) == {pid: True for pid in s.pids}
    assert s.answers() == {pid: "v2" for pid in s.pids}


def test_a_stale_socket_then_a_failed_attach_says_why_the_attach_failed(prefork):
    """When the step that found nobody at a stale socket starts over and its
    attach fails, the report is the attach's failure (here: no payload),
    not the first request's "not attached (no agent at ...)", whose hint
    (pyhot attach) would fail the same way."""
    s = prefork(2)
    master, w1, w2 = s.pids
    assert pyhot("attach", master).rc == 0 and pyhot("attach", w1).rc == 0
    stale_socket(w2)
    try:
        s.write("v2")
        r = pyhot("refresh", "--tree", master, "app", json_out=True,
                  env={"PYHOT_PAYLOAD": "/nonexistent/pyhot-payload.so"})
    finally:
        remove_socket(w2)
    assert r.rc != 0, r
    by = {p["pid"]: p for p in r.json["processes"]}
    assert by[w2]["outcome"] == "plan-failed", r
    message = by[w2]["error"]["message"]
    assert "/nonexistent/pyhot-payload.so" in message, r
    assert "not attached" not in message, r
    assert [by[p]["outcome"] for p in (master, w1)] == ["not-applied"] * 2, r
    assert s.answers() == {pid: "v1" for pid in s.pids}


# answer() holds the GIL in C for 2.5 s (libc usleep() through PyDLL) in a
# process whose pid has a file "stuck-PID" beside the module, once.
APP_STUCK = '''import ctypes
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def answer():
    flag = os.path.join(HERE, "stuck-%%d" %% os.getpid())
    if os.path.exists(flag):
        os.unlink(flag)
        ctypes.PyDLL(None).usleep(2500000)
    return "%s"
'''


def test_a_process_that_holds_the_gil_fails_its_plan_alone(prefork):
    """The requests of a tree refresh are under way together (cli/steps.h:
    one thread polls them all), each with its own deadline: a worker whose
    main thread holds the GIL in C answers "timeout" after --timeout while
    the others have planned. That worker is named with what to do, the
    others are not applied, no process changes; the next refresh, once it
    runs Python again, changes every one."""
    import threading
    s = prefork(2, app=APP_STUCK % "v1")
    master, w1, w2 = s.pids
    for pid in s.pids:
        assert pyhot("attach", pid).rc == 0
    open(os.path.join(s.dir, "stuck-%d" % w2), "w").close()
    asked = {}
    t = threading.Thread(target=lambda: asked.update(w2=s.ask(w2)))
    t.start()
    try:
        # In usleep(): clock_nanosleep(2) (230) or nanosleep(2) (35).
        wait_until(lambda: open("/proc/%d/task/%d/syscall" % (w2, w2)).read().split()[0]
                   in ("35", "230"), what="pid %d in usleep()" % w2)
        s.write("v2", APP_STUCK % "v2")
        r = pyhot("refresh", "--tree", master, "app", "--timeout", "1", json_out=True)
    finally:
        t.join()
    assert asked == {"w2": "v1"}
    assert r.rc == 124, r
    by = {p["pid"]: p for p in r.json["processes"]}
    assert by[w2]["outcome"] == "plan-failed", r
    assert "no safe point" in by[w2]["error"]["message"], r
    assert "pyhot interrupt %d" % w2 in by[w2]["error"]["hint"], r
    assert [by[p]["outcome"] for p in (master, w1)] == ["not-applied"] * 2, r
    assert s.answers() == {pid: "v1" for pid in s.pids}
    r = pyhot("refresh", "--tree", master, "app", json_out=True)
    assert r.rc == 0, r
    assert s.answers() == {pid: "v2" for pid in s.pids}


def test_the_apply_goes_where_the_plan_went_while_it_is_fresh(prefork):
    """A tree refresh asks each agent to keep its plan's connection for the
    apply (no second connect, trust check and accept; cli/steps.c). The
    agent keeps it a second; the command uses it only within half a second
    and connects again otherwise: here a worker holds the GIL in C for
    1.5 s, so the others' plans wait that long for its plan, and their
    applies go over new connections. Every process is refreshed either
    way."""
    import threading
    app = APP_STUCK.replace("2500000", "1500000")
    s = prefork(2, app=app % "v1")
    master, w1, w2 = s.pids
    for pid in s.pids:
        assert pyhot("attach", pid).rc == 0
    s.write("v2", app % "v2")
    r = pyhot("refresh", "--tree", master, "app", env={"PYHOT_TRACE": "1"})
    assert r.rc == 0, r
    # The last plan answered has its apply sent at once: over its connection
    # (the others too unless this machine stalls the command half a second).
    same = set(int(p) for p in re.findall(r"-> pid (\d+) refresh \([^)]*the same connection\)",
                                         r.err))
    assert same and same <= set(s.pids), r.err
    open(os.path.join(s.dir, "stuck-%d" % w2), "w").close()
    t = threading.Thread(target=s.ask, args=(w2,))
    t.start()
    try:
        wait_until(lambda: open("/proc/%d/task/%d/syscall" % (w2, w2)).read().split()[0]
                   in ("35", "230"), what="pid %d in usleep()" % w2)
        s.write("v3", app % "v3")
        r = pyhot("refresh", "--tree", master, "app", "--timeout", "10",
                  env={"PYHOT_TRACE": "1"})
    finally:
        t.join()
    assert r.rc == 0, r
    same = set(int(p) for p in re.findall(r"-> pid (\d+) refresh \([^)]*the same connection\)",
                                         r.err))
    # Their plans waited 1.5 s for w2's: too old to use; each connects again.
    assert master not in same and w1 not in same, r.err
    assert s.answers() == {pid: "v3" for pid in s.pids}


def test_a_stopped_process_in_the_tree_is_named_not_waited_for(prefork):
    """A process of the tree with an agent but stopped (SIGSTOP): its step
    does not ask the agent at once (a stopped process answers nothing, and
    the request would wait its whole --timeout); it says the process is
    stopped and how to resume it, and no process is changed."""
    s = prefork(2)
    master, w1, w2 = s.pids
    for pid in s.pids:
        assert pyhot("attach", pid).rc == 0
    s.write("v2")
    os.kill(w2, signal.SIGSTOP)
    try:
        wait_until(lambda: proc_state(w2) == "T", what="pid %d stopped" % w2)
        r = pyhot("refresh", "--tree", master, "app", "--timeout", "30", json_out=True)
        text = pyhot("refresh", "--tree", master, "app", "--timeout", "30")
    finally:
        os.kill(w2, signal.SIGCONT)
    # The text says it too, with what to do there.
    assert text.rc == r.rc, text
    assert "pid %d: plan failed: attach: pid %d is stopped" % (w2, w2) in text.err, text
    assert "hint for pid %d: resume it first: kill -CONT %d" % (w2, w2) in text.err, text
    assert r.rc != 0, r
    by = {p["pid"]: p for p in r.json["processes"]}
    assert by[w2]["outcome"] == "plan-failed", r
    assert "pid %d is stopped" % w2 in by[w2]["error"]["message"], r
    assert "kill -CONT %d" % w2 in by[w2]["error"]["hint"], r
    assert [by[p]["outcome"] for p in (master, w1)] == ["not-applied"] * 2, r
    assert s.answers() == {pid: "v1" for pid in s.pids}


def test_a_tree_that_opted_out_is_refused_as_one_process_is(prefork):
    """A program that opted out of remote debugging but runs its own agent
    (python -m pyhot run, forked workers with agents of their own): the
    one-process refresh refuses each process, and so does the tree refresh,
    though every agent's socket is there (its ping-less path reads the
    opt-out too). Nothing changes."""
    s = prefork(2, env={"PYTHONPATH": PYPKG, "PYTHON_DISABLE_REMOTE_DEBUG": "1"},
                pyargs=["-m", "pyhot", "run"])
    # each child's agent starts after its fork
    wait_until(lambda: all(os.path.exists(sock_path(pid)) for pid in s.pids),
               what="the agents of %s" % s.pids)
    s.write("v2")
    one = pyhot("refresh", s.pids[1], "app")
    assert one.rc == 3 and "opted out of remote debugging" in one.err, one
    r = pyhot("refresh", "--tree", s.master.pid, "app", json_out=True)
    assert r.rc == 3, r
    for p in r.json["processes"]:
        assert p["outcome"] == "plan-failed", r
        assert "opted out of remote debugging" in p["error"]["message"], r
    assert s.answers() == {pid: "v1" for pid in s.pids}
