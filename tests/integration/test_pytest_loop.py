"""`python -m pytest -p pyhot.pytest --pyhot-loop` driven through a real
pty, as a person at a terminal would: a failing test is printed, an edit of
the code under test (or of the test) is refreshed in place and the same
test passes in the same process; a broken edit is refused and the loop
keeps waiting; Ctrl-C ends it with pytest's "interrupted" exit code.

Runs on every interpreter that has pytest 7 or later; Debian's python3
always has it (scripts/setup.sh installs python3-pytest), so at least that
one runs everywhere."""
import functools
import os
import subprocess

import pytest

from conftest import INTERPRETERS
from inproc_driver import PYPKG
from pty_term import Term

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(PYPKG, "pyhot", "_pyhot.abi3.so")),
                                reason="package not built: make all")

APP = '''\
import builtins
builtins.app_loads = getattr(builtins, "app_loads", 0) + 1

def add(a, b):
    return a - b
'''
FIXED = APP.replace("a - b", "a + b")

TEST = '''\
import builtins
import os

import app

def test_add():
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write("%d %d\\n" % (os.getpid(), builtins.app_loads))
    assert app.add(2, 3) == 5

def test_other():
    assert app.add(0, 0) == 0
'''

CONFTEST = '''\
import pytest

@pytest.fixture
def base():
    return 1
'''


@functools.lru_cache(maxsize=None)
def pytest_version(python):
    """The major version of the pytest python has, or None."""
    r = subprocess.run([python, "-c", "import pytest; print(pytest.__version__)"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       universal_newlines=True, timeout=60, cwd="/")
    return int(r.stdout.split(".")[0]) if r.returncode == 0 else None


@pytest.fixture(params=[pytest.param((name, path), id=name) for name, path in INTERPRETERS])
def pytest_python(request):
    name, path = request.param
    version = pytest_version(path)
    if name.endswith("-debian"):
        # never skipped: CI installs python3-pytest (scripts/setup.sh)
        assert version is not None and version >= 7, \
            "Debian's python3 has no pytest >= 7: run scripts/setup.sh"
    elif version is None or version < 7:
        pytest.skip("%s has no pytest >= 7 installed" % name)
    return path


def write(path, text):
    """Save text, its mtime a second later than before (so that a save
    within the same clock tick is seen too)."""
    before = os.stat(str(path)).st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = os.stat(str(path))
    os.utime(str(path), ns=(st.st_atime_ns, max(st.st_mtime_ns, before + 1_000_000_000)))


@pytest.fixture
def files():
    """The project's files besides pytest.ini (a test parametrizes files)."""
    return {"app.py": APP, "test_app.py": TEST}


@pytest.fixture
def project(tmp_path, files):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


class Loop(Term):
    """The pytest session on its terminal: expect() finds each pattern
    after the previous one; exit_code() waits for the end."""

    pos = 0

    def expect(self, pattern, timeout=60):
        self.pos = self.wait_for(pattern, timeout=timeout, start=self.pos)

    def exit_code(self):
        return os.WEXITSTATUS(self.wait_exit(60))

    @property
    def out(self):
        return self.buf


@pytest.fixture
def extra_args():
    """pytest options a test adds (it parametrizes extra_args)."""
    return []


@pytest.fixture
def loop(pytest_python, project, extra_args):
    env = {"PYTHONPATH": PYPKG, "RUNS_LOG": str(project / "runs.log"),
           "TERM": "dumb", "COLUMNS": "100"}
    t = Loop([pytest_python, "-m", "pytest", "-p", "pyhot.pytest", "--pyhot-loop",
              "--pyhot-interval", "0.05", "-p", "no:cacheprovider"] +
             extra_args, cwd=str(project), env=env)
    yield t
    t.close()


def first_failure(loop):
    loop.expect(r"test_app\.py F\.")
    loop.expect(r"assert -1 == 5")
    loop.expect(r"waiting for a saved edit under ")


def runs(project):
    """(pid, times app was imported) for each run of test_add."""
    text = (project / "runs.log").read_text()
    return [tuple(map(int, ln.split())) for ln in text.splitlines() if ln]


def test_edit_of_the_code_under_test_passes_in_the_same_process(loop, project):
    first_failure(loop)
    write(project / "app.py", FIXED)
    loop.expect(r"pyhot: refreshed app: changed app\.add")
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out
    # the same test ran twice, in the pytest process, and app was imported once
    assert runs(project) == [(loop.pid, 1), (loop.pid, 1)], loop.out
    assert "Traceback" not in loop.out, loop.out


def test_edit_of_the_test_keeps_pytests_assert_messages(loop, project):
    first_failure(loop)
    write(project / "test_app.py", TEST.replace("== 5", "== -2"))
    loop.expect(r"pyhot: refreshed test_app: changed test_app\.test_add")
    # the refreshed test still has pytest's assertion rewriting
    loop.expect(r"assert -1 == -2")
    loop.expect(r"waiting for a saved edit")
    write(project / "test_app.py", TEST.replace("== 5", "== -1"))
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out
    assert [pid for pid, _ in runs(project)] == [loop.pid] * 3, loop.out


def test_broken_edit_is_refused_and_the_loop_waits(loop, project):
    first_failure(loop)
    write(project / "app.py", FIXED.replace("def add(a, b):", "def add(a, b:"))
    loop.expect(r"refresh refused, nothing changed: .*SyntaxError")
    loop.expect(r"still waiting for a saved edit")
    assert os.waitpid(loop.pid, os.WNOHANG) == (0, 0)
    write(project / "app.py", FIXED)
    loop.expect(r"pyhot: refreshed app: changed app\.add")
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out
    assert runs(project) == [(loop.pid, 1), (loop.pid, 1)], loop.out


def test_ctrl_c_ends_the_loop_cleanly(loop, project):
    first_failure(loop)
    os.write(loop.fd, b"\x03")   # Ctrl-C on the terminal
    assert loop.exit_code() == 2, loop.out
    after = loop.out[loop.out.index("waiting for a saved edit"):]
    assert "stopped by Ctrl-C" in after, loop.out
    assert "Traceback" not in loop.out and "KeyboardInterrupt" not in after, loop.out
    assert runs(project) == [(loop.pid, 1)]


@pytest.mark.parametrize("extra_args", [["--color=yes"]])
def test_summary_after_the_fix_is_pytests_own(loop, project):
    """Once the failed test passes, the session's summary counts it once,
    as passed, in green: the first run's failure is forgotten."""
    loop.expect(r"assert -1 == 5")
    loop.expect(r"waiting for a saved edit")
    write(project / "app.py", FIXED)
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out
    last = loop.out.rstrip().splitlines()[-1]
    assert "failed" not in last and "\x1b[31m" not in last and "\x1b[32m" in last, repr(last)


@pytest.mark.parametrize("extra_args", [["-x"]])
def test_exitfirst_runs_the_rest_once_the_failure_passes(loop, project):
    """-x stops the first run at the failure; after the fix the failed test
    and those never run run, and the session ends with all of them."""
    loop.expect(r"test_app\.py F\s")
    loop.expect(r"pyhot: 1 failed, 1 not run yet")
    loop.expect(r"waiting for a saved edit")
    write(project / "app.py", FIXED)
    loop.expect(r"test_app\.py \.\.")
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out


@pytest.mark.parametrize("files", [{
    "app.py": APP, "conftest.py": CONFTEST,
    "test_app.py": TEST + "\ndef test_fixture(base):\n    assert base == 2\n"}])
def test_edit_of_a_conftest_fixture(loop, project):
    """conftest.py is imported by pytest's own loader too: a fixed fixture
    is refreshed in place and the test that used it passes."""
    loop.expect(r"test_app\.py F\.F")
    loop.expect(r"waiting for a saved edit")
    write(project / "app.py", FIXED)
    loop.expect(r"pyhot: refreshed app: changed app\.add")
    loop.expect(r"pyhot: 1 failed")   # the fixture's test still fails
    write(project / "conftest.py", CONFTEST.replace("return 1", "return 2"))
    loop.expect(r"pyhot: refreshed conftest: changed conftest\.base")
    loop.expect(r"3 passed")
    assert loop.exit_code() == 0, loop.out


@pytest.mark.parametrize("files", [{
    "app.py": APP + "\ndef __pyhot_after_refresh__(changes):\n    raise KeyError('late')\n",
    "test_app.py": TEST}])
def test_a_hook_that_raises_is_reported_and_the_tests_run(loop, project):
    """A module's after hook that raises: the loop says so, the refresh
    stays applied, the failed test runs and passes."""
    first_failure(loop)
    write(project / "app.py", (project / "app.py").read_text().replace("a - b", "a + b"))
    loop.expect(r"pyhot: refreshed app: changed app\.add")
    loop.expect(r"pyhot: app: hook __pyhot_after_refresh__ raised \S*app\.py:\d+: KeyError: 'late' "
                r"\(the refresh stays applied\)")
    loop.expect(r"2 passed")
    assert loop.exit_code() == 0, loop.out
