"""--help, usage errors, --json of usage errors, and the man page against
--help (every long option in one is in the other)."""
import os
import re
import subprocess

import pytest

from conftest import REPO, pyhot

COMMANDS = ["attach", "status", "detach", "refresh", "rollback", "ps", "stack", "watch", "exec",
            "interrupt"]
MAN = os.path.join(REPO, "man", "pyhot.1")


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"]] +
                         [[c, "--help"] for c in COMMANDS] +
                         [[c, "-h"] for c in COMMANDS] +
                         [["help", c] for c in COMMANDS])
def test_help_exits_0_on_stdout(argv):
    r = pyhot(*argv)
    assert r.rc == 0, r
    assert r.err == "", r
    assert r.out.startswith("usage: pyhot "), r
    if len(argv) == 2 and argv[0] in COMMANDS:
        assert r.out.startswith("usage: pyhot %s " % argv[0]), r
    assert "exit codes:" in r.out


def test_help_cmd_equals_cmd_help():
    for c in COMMANDS:
        assert pyhot("help", c).out == pyhot(c, "--help").out


def test_version():
    r = pyhot("--version")
    assert r.rc == 0 and re.match(r"^pyhot \d+\.\d+\.\d+\nrevision: \S+\n"
                                  r"payload build id: [0-9a-f]{40}\n$", r.out), r


@pytest.mark.parametrize("argv,needle", [
    ([], "missing command"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["attach"], "missing <pid>"),
    (["attach", "abc"], "'abc' is not a process id"),
    (["attach", "1", "2"], "unexpected argument '2'"),
    (["status", "--nope", "1"], "unknown option '--nope'"),
    (["status", "1", "--timeout"], "needs an argument"),
    (["status", "1", "--timeout=soon"], "--timeout wants seconds"),
    (["detach", "1", "--dry-run"], "unknown option '--dry-run'"),
    (["refresh"], "missing <pid>"),
    (["help", "nope"], "unknown command 'nope'"),
    (["attach", "1", "-v", "-q"], "contradict"),
])
def test_usage_errors(argv, needle):
    r = pyhot(*argv)
    assert r.rc == 2, r
    assert r.out == "", r
    lines = r.err.splitlines()
    assert len(lines) == 2, r
    assert lines[0].startswith("pyhot: ") and needle in lines[0], r
    assert lines[1].startswith("hint: usage: pyhot "), r
    j = pyhot(*argv, json_out=True)
    assert j.rc == 2 and j.json["error"]["kind"] == "usage", j


def test_no_colour_when_not_a_tty():
    r = pyhot("attach")
    assert "\033[" not in r.err


def test_colour_on_a_tty_unless_no_color():
    import pty
    from conftest import PYHOT

    def run(env):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(PYHOT, [PYHOT, "attach"], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        return out.decode()

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\033[31m" in run(env)
    assert "\033[" not in run(dict(env, NO_COLOR="1"))


def long_options_of_help():
    opts = set()
    for argv in [["--help"]] + [[c, "--help"] for c in COMMANDS]:
        opts |= set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", pyhot(*argv).out))
    return opts


def long_options_of_man():
    text = open(MAN).read().replace("\\-", "-")
    # Options of the target's interpreter are not pyhot's.
    text = text.replace("-X disable_remote_debug", "")
    # Nor are pytest's (the pyhot.pytest plugin's option).
    text = text.replace("-p pyhot.pytest --pyhot-loop", "")
    return set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", text))


def test_man_page_and_help_list_the_same_options():
    h, m = long_options_of_help(), long_options_of_man()
    assert h - m == set(), "in --help but not in man/pyhot.1: %s" % sorted(h - m)
    assert m - h == set(), "in man/pyhot.1 but not in --help: %s" % sorted(m - h)


def test_man_page_lists_commands_exit_codes_environment():
    text = open(MAN).read()
    for c in COMMANDS:
        assert re.search(r"^\.SS \"?%s\b" % c, text, re.M), c
    for code in ("0", "1", "2", "3", "4", "124"):
        assert re.search(r"^\.TP\n(\\fB)?%s(\\fR)?\n" % code, text, re.M), code
    for var in ("PYHOT_PAYLOAD", "PYHOT_TRACE", "NO_COLOR"):
        assert var in text
    assert ".SH SECURITY" in text
    assert ".SH EXAMPLES" in text


def test_man_page_renders_without_warnings():
    try:
        p = subprocess.run(["man", "--warnings", "-l", MAN], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=30,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
    except FileNotFoundError:
        pytest.skip("man is not installed")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", p.stderr
    assert "SECURITY" in p.stdout
