"""Every field (and every value) the man page documents for --json is read
by some test: a field no test reads can vanish unseen (a planted bug that
renamed `safepoint` passed every tier). The first test checks that against
the man page's JSON OUTPUT section; the others read the fields no other
test did: ps's agent_state, stack's source and truncated and the native
threads' state, watch's roots, directories and events' result, the
history's time, an error's errno."""
import glob
import json
import os
import re
import signal
import subprocess
import time

from conftest import PYHOT, REPO, pyhot
from test_cli_watch import app, module_src, save_by_rename  # noqa: F401 (a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))


def documented_json_names():
    """The bold words of the man page's JSON OUTPUT section: field names and
    the values it lists."""
    with open(os.path.join(REPO, "man", "pyhot.1")) as f:
        lines = f.read().split("\n")
    i, j = lines.index(".SH JSON OUTPUT"), lines.index(".SH EXIT STATUS")
    names = set()
    for line in lines[i:j]:
        macro, _, rest = line.partition(" ")
        if macro not in (".B", ".BR", ".RB"):
            continue
        parts = re.findall(r'"[^"]*"|\S+', rest)
        bold = {".B": parts, ".BR": parts[0::2], ".RB": parts[1::2]}[macro]
        for word in bold:
            for w in re.split(r"[ ,{}\[\]()]+", word.strip('"').replace("\\-", "-")):
                if re.fullmatch(r"[a-z_][a-z0-9_-]*", w):
                    names.add(w)
    return names


def test_every_documented_json_field_is_read_by_a_test():
    names = documented_json_names()
    assert {"safepoint", "via", "wait_ms", "generation", "main_tid"} <= names, names
    src = ""
    for path in glob.glob(os.path.join(HERE, "*.py")) + \
            glob.glob(os.path.join(REPO, "tests", "engine", "*.py")):
        with open(path) as f:
            src += f.read()
    unread = sorted(n for n in names if '"%s"' % n not in src and "'%s'" % n not in src)
    assert not unread, "documented in man/pyhot.1 (JSON OUTPUT), read by no test: %s" % unread


def entry(pid):
    r = pyhot("ps", json_out=True)
    assert r.rc == 0, r
    (e,) = [p for p in r.json["processes"] if p["pid"] == pid]
    return e


def test_ps_agent_state(target):
    t = target("sleep")
    assert entry(t.pid)["agent_state"] == "none"
    assert pyhot("attach", t.pid).rc == 0
    assert entry(t.pid)["agent_state"] == "answers"
    os.kill(t.pid, signal.SIGSTOP)
    try:
        e = entry(t.pid)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    assert e["agent_state"] == "not-answering" and e["reason_kind"] == "stopped", e
    t.assert_working()


def test_stack_frame_fields(target, tmp_path):
    t = target("sleep")
    j = pyhot("stack", t.pid, json_out=True)
    assert j.rc == 0, j
    main = [th for th in j.json["threads"] if th["main"]][0]
    assert main["truncated"] is False, main
    assert all({"file", "line", "function", "source"} <= set(f) for f in main["frames"]), main
    assert any(f["source"] for f in main["frames"]), main
    go = tmp_path / "go"
    s = target("stuck", args=[str(go)])
    assert pyhot("attach", s.pid).rc == 0
    go.write_text("")
    s.wait_for("^stuck")
    j = pyhot("stack", s.pid, "--timeout=0.5", json_out=True)
    assert j.rc == 124, j
    states = {n["tid"]: n["state"] for n in j.json["native"]}
    assert states[s.pid] in ("S", "R", "D"), states


def test_errno_of_a_failure():
    r = pyhot("attach", "999999999", json_out=True)
    assert r.rc in (2, 3) and isinstance(r.json["error"].get("errno", 0), int), r
    r = pyhot("attach", "4000000", json_out=True)   # above pid_max: no such process
    assert r.rc == 3 and r.json["error"]["errno"] == 2, r   # ENOENT from /proc


def test_history_time(target, app):
    t = app()
    assert pyhot("attach", t.pid).rc == 0
    assert pyhot("status", t.pid).rc == 0
    t0 = time.time()
    (t.dir / "hotmod.py").write_text(module_src(2))
    assert pyhot("refresh", t.pid, "hotmod").rc == 0
    r = pyhot("status", t.pid, json_out=True)
    (g,) = r.json["status"]["history"]["generations"]
    assert t0 - 5 <= g["time"] <= time.time() + 5, g


def test_watch_roots_directories_and_results(app, procs):
    t = app()
    p = procs([PYHOT, "watch", str(t.pid), str(t.dir), "--json"],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert "watching" in p.stderr.readline()
    save_by_rename(t.dir / "hotmod.py", module_src(5))
    t.wait_for("^value 5$")
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    doc = json.loads(out)
    assert doc["roots"] == [str(t.dir)], doc
    assert str(t.dir) in doc["directories"], doc
    (ev,) = [e for e in doc["events"] if e["event"] == "refreshed"]
    (res,) = ev["result"]
    assert res["module"] == "hotmod" and isinstance(res["generation"], int), ev
