"""pyhot exec: code runs in the target at a safe point; what it prints and
the value of a final expression come back to us, an exception comes back as
a traceback and exit 1, and the target goes on."""
import os

import pytest

from conftest import pyhot, sock_path


def test_output_value_and_traceback(target, python):
    t = target("sleep", python=python)
    r = pyhot("exec", t.pid, "-c", "import sys\nprint('hello from', __name__)\n"
              "print('to stderr', file=sys.stderr)\n6 * 7")
    assert r.rc == 0, r
    assert r.out == "hello from __pyhot_exec__\n42\n", r
    assert "to stderr" in r.err, r

    r = pyhot("exec", t.pid, "-c", "def f():\n    return 1 / 0\nf()")
    assert r.rc == 1, r
    assert "pyhot: exec: ZeroDivisionError: division by zero" in r.err, r
    assert "Traceback (most recent call last)" in r.err and ", in f" in r.err, r
    assert "<pyhot-driver>" not in r.err, r

    # What the code printed did not go to the target's own stdout.
    assert "hello from" not in t.output() and "to stderr" not in t.output()
    t.assert_working()


def test_state_persists_in_the_target_but_not_the_namespace(target):
    t = target("sleep")
    assert pyhot("exec", t.pid, "-c", "import __main__; __main__.HOT = 5; y = 1").rc == 0
    r = pyhot("exec", t.pid, "-c", "import __main__; __main__.HOT")
    assert r.rc == 0 and r.out == "5\n", r
    r = pyhot("exec", t.pid, "-c", "y")
    assert r.rc == 1 and "NameError" in r.err, r
    # An expression whose value is None prints nothing, as in the REPL.
    r = pyhot("exec", t.pid, "-c", "None")
    assert r.rc == 0 and r.out == "", r


def test_json_success_and_failures(target):
    t = target("busy")
    r = pyhot("exec", t.pid, "-c", "print('x'); [1, 2]", json_out=True)
    assert r.rc == 0, r
    assert r.json["stdout"] == "x\n" and r.json["value"] == "[1, 2]", r
    assert r.json["stderr"] == "", r

    r = pyhot("exec", t.pid, "-c", "raise KeyError('k')", json_out=True)
    assert r.rc == 1, r
    assert r.json["error"]["kind"] == "failed", r
    assert "KeyError" in r.json["error"]["traceback"], r
    assert r.json["exception"] == "KeyError: 'k'", r

    r = pyhot("exec", t.pid, "-c", "def f(:", json_out=True)
    assert r.rc == 1 and "SyntaxError" in r.json["error"]["message"], r

    # SystemExit does not end the target.
    r = pyhot("exec", t.pid, "-c", "raise SystemExit(3)", json_out=True)
    assert r.rc == 1 and "SystemExit" in r.json["error"]["message"], r
    t.assert_working()


def test_file_and_stdin(target, tmp_path):
    t = target("sleep")
    f = tmp_path / "snippet.py"
    f.write_text("import os\nprint(os.getpid())\n'done'\n")
    r = pyhot("exec", t.pid, str(f))
    assert r.rc == 0 and r.out == "%d\n'done'\n" % t.pid, r
    f.write_text("x = 1\nraise ValueError('bad value')\n")
    r = pyhot("exec", t.pid, str(f))
    assert r.rc == 1 and 'File "%s", line 2' % f in r.err, r

    import subprocess
    from conftest import PYHOT
    p = subprocess.run([PYHOT, "exec", str(t.pid), "-"], input="print(2 + 3)\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    assert p.returncode == 0 and p.stdout == "5\n", p


@pytest.mark.parametrize("argv,code,needle", [
    (["exec", "1"], 2, "missing -c CODE or FILE"),
    (["exec", "1", "-c", "1", "f.py"], 2, "not both"),
    (["exec", "-c", "1"], 2, "missing <pid>"),
    (["exec", "1", "a", "b"], 2, "unexpected argument 'b'"),
    (["exec", "999999999", "-c", "1"], 3, "does not exist"),
])
def test_errors_and_exit_codes(argv, code, needle):
    r = pyhot(*argv)
    assert r.rc == code and needle in r.err, r
    j = pyhot(*argv, json_out=True)
    assert j.rc == code, j


def test_missing_file(target, tmp_path):
    t = target("sleep", wait=False)
    r = pyhot("exec", t.pid, str(tmp_path / "nope.py"), json_out=True)
    assert r.rc == 1 and "nope.py" in r.json["error"]["message"], r


def test_code_that_runs_too_long_is_uncertain(target):
    t = target("sleep")
    r = pyhot("exec", t.pid, "--timeout=0.3", "-c", "import time; time.sleep(1.5)",
              json_out=True)
    assert r.rc == 4 and r.json["error"]["kind"] == "uncertain", r
    assert "may still be running" in r.json["error"]["hint"], r
    t.assert_working()


def test_attaches_quietly_first(target):
    """No agent yet: exec attaches, its stdout stays the code's, and the
    attach is told with -v only (cli_attach_quiet)."""
    t = target("sleep")
    r = pyhot("exec", t.pid, "-v", "-c", "6 * 7")
    assert r.rc == 0 and r.out == "42\n", r
    assert "attached to pid %d, agent at %s" % (t.pid, sock_path(t.pid)) in r.err, r
    r = pyhot("exec", t.pid, "-v", "-c", "6 * 7")
    assert r.rc == 0 and r.out == "42\n", r
    assert "attached to pid" not in r.err, r
    assert "already running" in r.err, r
    r = pyhot("exec", t.pid, "-c", "1", json_out=True)
    assert r.rc == 0 and r.json["attach"]["agent"]["reused"] is True, r
