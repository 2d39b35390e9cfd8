"""python -m pyhot run: the agent is there from the start, so every command
works without ptrace, even on a target that is not dumpable (ptrace and
/proc refused to its own user); another user is still refused."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import NOBODY, pyhot, pyhot_for_nobody
from inproc_driver import PYPKG, REPL, Repl

OTHER = ("setpriv", "--reuid=1", "--regid=1", "--clear-groups")   # daemon


@pytest.fixture
def nobody_dir():
    """A directory user nobody can read and write, with the package and the
    target in it (the checkout may be closed to nobody)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    d = tempfile.mkdtemp(prefix="pyhot-run-")
    shutil.copytree(PYPKG, os.path.join(d, "python"))
    shutil.copy(REPL, d)
    with open(os.path.join(d, "m.py"), "w") as f:
        f.write('def f():\n    return "old"\n')
    for root, dirs, files in os.walk(d):
        for n in dirs + files + ["."]:
            os.chmod(os.path.join(root, n), 0o777)
    yield d
    shutil.rmtree(d, True)


def test_run_then_every_command_without_ptrace(python, nobody_dir):
    exe = pyhot_for_nobody()
    if subprocess.run(list(NOBODY) + [python, "-c", "pass"],
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("user nobody cannot run %s (it sits in a closed directory)" % python)
    t = Repl(python, nobody_dir, argv=["-m", "pyhot", "run", "repl.py"],
             env={"PYTHONPATH": os.path.join(nobody_dir, "python"),
                  "PYHOT_TEST_NODUMP": "1"}, prefix=NOBODY)
    try:
        assert t.run("import m; _ = open('/proc/self/status').read()").count("\n") > 5
        # ptrace by its own user is refused: attach could not get in
        r = pyhot("status", t.pid, prefix=NOBODY, exe=exe)
        assert r.rc == 0 and "CPython" in r.out, r
        with open(os.path.join(nobody_dir, "m.py"), "w") as f:
            f.write('def f():\n    return "new"\n')
        r = pyhot("refresh", t.pid, prefix=NOBODY, exe=exe)
        assert r.rc == 0 and "m.f" in r.out, r
        r = pyhot("exec", t.pid, "-c", "import m; m.f()", prefix=NOBODY, exe=exe)
        assert r.rc == 0 and "'new'" in r.out, r
        r = pyhot("rollback", t.pid, "m", prefix=NOBODY, exe=exe)
        assert r.rc == 0, r
        assert t.run("_ = m.f()") == "old"
        # the baseline was the source the module was imported from
        assert t.run("import pyhot; _ = pyhot.history()['generations'][-1]['kind']") == "refresh"
        r = pyhot("status", t.pid, prefix=OTHER, exe=exe)
        assert r.rc == 3 and "permission denied" in r.err, r
    finally:
        t.close()


def test_refused_attach_names_the_way_without_ptrace(python, nobody_dir):
    """A target its own user may not ptrace (not dumpable): attach is refused,
    changes nothing, and its hint names `python -m pyhot run`."""
    exe = pyhot_for_nobody()
    if subprocess.run(list(NOBODY) + [python, "-c", "pass"],
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("user nobody cannot run %s (it sits in a closed directory)" % python)
    code = ("import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"   # PR_SET_DUMPABLE 0
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen(list(NOBODY) + [python, "-c", code], stdout=subprocess.PIPE,
                         universal_newlines=True)
    try:
        assert p.stdout.readline().startswith("ready")
        r = pyhot("attach", p.pid, prefix=NOBODY, exe=exe)
        assert r.rc == 3, r
        assert "python -m pyhot run script.py" in r.err, r
        assert p.poll() is None
    finally:
        p.kill()
        p.wait(timeout=10)


FORK_AT_ONCE = r'''import os, sys, time
pid = os.fork()          # the program's first statement
if pid == 0:
    os.write(1, b"child %d\n" % os.getpid())
    time.sleep(60)
    os._exit(0)
os.waitpid(pid, 0)
'''


def test_a_child_forked_at_once_gets_an_agent(python, tmp_path):
    """python -m pyhot run starts the agent before the program: a child the
    program forks at its first statement gets an agent of its own. The
    after-fork hook used to be registered at the agent's first safe point,
    which such a program could fork before (its workers then had none: one
    run in five on 3.13)."""
    from conftest import wait_until
    from pyhot_testlib import die_with_parent, remove_socket, sock_path
    script = tmp_path / "fork_at_once.py"
    script.write_text(FORK_AT_ONCE)
    p = subprocess.Popen([python, "-m", "pyhot", "run", str(script)],
                         env=dict(os.environ, PYTHONPATH=PYPKG), stdout=subprocess.PIPE,
                         universal_newlines=True, preexec_fn=die_with_parent)
    child = 0
    try:
        line = p.stdout.readline()
        assert line.startswith("child "), line
        child = int(line.split()[1])
        wait_until(lambda: os.path.exists(sock_path(child)),
                   what="the agent of pid %d, forked at once" % child)
        r = pyhot("exec", child, "-c", "import os; os.getpid()")
        assert r.rc == 0 and str(child) in r.out, r
    finally:
        if child:
            os.kill(child, 9)
            remove_socket(child)
        p.kill()
        p.wait()
        remove_socket(p.pid)
        p.stdout.close()
