"""A real Flask development server (werkzeug, threaded, reloader off) on
pyenv 3.11.7, driven over HTTP while the real CLI refreshes its views.

The demo app (tests/apps/flask_app.py, tests/apps/flask_demo/) is copied
into tmp_path and edited there. What is checked:
  - an edited view answers with the new text after `pyhot refresh`, and the
    module's state (views.HITS, the hit counter) and the function objects
    the routes hold are the same objects, with the same values;
  - requests made by another thread during several refreshes never fail,
    never get a 500, and only ever see whole versions of the view;
  - a refresh of a file with a syntax error exits 1, changes nothing and the
    server keeps serving; the next good edit goes in;
  - a new helper function used by a changed view works.

Flask is required, never skipped: pyenv 3.11.7 has it on the machines pyhot
is built for (make demo runs the same app on it). When no interpreter on the
machine has Flask the tests fail and say how to install it.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from conftest import INTERPRETERS, REPO, free_port, pyhot, wait_until

APPS = os.path.join(REPO, "tests", "apps")


def flask_python():
    """pyenv 3.11.7 first (the demo's interpreter), then any other
    interpreter on the machine that has Flask."""
    order = sorted(INTERPRETERS, key=lambda np: np[0] != "3.11")
    tried = []
    for name, path in order:
        probe = subprocess.run([path, "-c", "import flask, werkzeug.serving"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=30)
        if probe.returncode == 0:
            return path
        tried.append(path)
    pytest.fail("no interpreter with Flask (tried %s): install it with "
                "`~/.pyenv/versions/3.11.7/bin/python3.11 -m pip install flask` or "
                "`apt-get install python3-flask`" % (", ".join(tried) or "none"),
                pytrace=False)


def request(port, path, timeout=10):
    """(status, body) of one GET over a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def get(port, path):
    status, body = request(port, path)
    assert status == 200, (path, status, body)
    return body


def edit(path, old, new):
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


def refresh(pid, *extra):
    return pyhot("refresh", pid, "flask_demo.views", *extra, json_out=True)


def changes(r):
    """{(action, kind, name)} of the one module a refresh reports."""
    (mod,) = r.json["modules"]
    assert mod["module"] == "flask_demo.views", r
    return {(c["action"], c["kind"], c["name"]) for c in mod["changes"]}


def live(pid, expr):
    """The value of expr in the target (pyhot exec), as text."""
    r = pyhot("exec", pid, "-c", "import sys\nviews = sys.modules['flask_demo.views']\n" + expr)
    assert r.rc == 0, r
    return r.out.strip()


@pytest.fixture(scope="module")
def flask_py():
    return flask_python()


@pytest.fixture
def server(target, tmp_path, flask_py):
    """The demo service from a copy in tmp_path, answering over HTTP, with
    the agent attached and its baseline taken. `target` kills and reaps it."""
    app = tmp_path / "apps"
    shutil.copytree(APPS, str(app))
    port = free_port()
    t = target(script=str(app / "flask_app.py"), mode=str(port), python=flask_py)

    def answers():
        try:
            return request(port, "/hello/probe", timeout=2)[0] == 200
        except OSError:
            assert t.proc.poll() is None, t.output()
            return False

    wait_until(answers, timeout=10, step=0.02, what="the Flask server to answer")
    t.port = port
    t.views = app / "flask_demo" / "views.py"
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, r
    # The baseline is read at the agent's first safe point after attach,
    # which attach does not wait for: a status round trip makes sure it was
    # taken before the test edits the file.
    assert pyhot("status", t.pid).rc == 0
    yield t
    out = t.output()
    assert t.proc.poll() is None, "the server died:\n" + out
    assert "Traceback" not in out and not re.search(r'" 500 ', out), out


def test_view_edit_is_served_and_state_survives(server):
    t = server
    start = json.loads(get(t.port, "/stats"))["hits"]      # the readiness probe(s)
    assert get(t.port, "/hello/bob") == "Hello, bob!\n"
    for _ in range(4):
        assert get(t.port, "/").startswith("Hello from pid %d" % t.pid)
    hits = json.loads(get(t.port, "/stats"))["hits"]
    assert start >= 1 and hits == start + 5
    before = live(t.pid, "(id(views.HITS), id(views.hello), id(views.greeting))")

    edit(t.views, 'return "Hello"', 'return "Howdy"')
    r = refresh(t.pid)
    assert r.rc == 0, r
    assert changes(r) == {("changed", "function", "flask_demo.views.greeting")}, r
    assert r.json["modules"][0]["summary"]["changed"] == 1, r

    assert get(t.port, "/hello/bob") == "Howdy, bob!\n"
    assert get(t.port, "/").startswith("Howdy from pid %d" % t.pid)
    # The counter kept counting: same dict, same value plus two.
    stats = json.loads(get(t.port, "/stats"))
    assert stats == {"hits": hits + 2, "pid": t.pid}
    # Patched in place: the routes still hold the same function objects.
    assert live(t.pid, "(id(views.HITS), id(views.hello), id(views.greeting))") == before


def test_requests_during_refreshes_never_fail(server):
    t = server
    versions = ["Hello"] + ["Hello v%d" % i for i in range(1, 11)]
    errors = []
    stop = threading.Event()

    def loop(seen, path):
        while not stop.is_set():
            try:
                status, body = request(t.port, path, timeout=5)
            except Exception as e:  # noqa: B902 - every failure is a finding
                errors.append("%s: %r" % (path, e))
                continue
            if status != 200:
                errors.append("%s: %d %r" % (path, status, body))
            else:
                seen.append(body)

    # Two clients on /hello/<name>, one on / (which also bumps the counter).
    seen = {"/hello/a": [], "/hello/b": [], "/": []}
    clients = [threading.Thread(target=loop, args=(seen[p], p), daemon=True) for p in seen]
    for c in clients:
        c.start()

    def all_see(word):
        return all(len(s) > 2 and s[-1].startswith(word + ("," if p != "/" else " from"))
                   for p, s in seen.items())

    try:
        wait_until(lambda: all_see("Hello"), timeout=10, what="the request loops to run")
        for old, new in zip(versions, versions[1:]):
            edit(t.views, 'return "%s"' % old, 'return "%s"' % new)
            r = refresh(t.pid)
            assert r.rc == 0, r
            assert changes(r) == {("changed", "function", "flask_demo.views.greeting")}, r
            # A request made after the refresh sees the new version at once;
            # the loops do within a request or two (one may be in flight).
            assert get(t.port, "/hello/me") == "%s, me!\n" % new
            marks = {p: len(s) for p, s in seen.items()}
            wait_until(lambda: all_see(new) and all(len(s) > marks[p] + 1
                                                    for p, s in seen.items()),
                       timeout=10, what="the loops to see %r" % new)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=10)
    assert not any(c.is_alive() for c in clients)
    assert errors == [], errors
    for path, bodies in seen.items():
        assert len(bodies) >= 2 * len(versions), (path, len(bodies))
        # Only whole versions, and each client's requests (one after the
        # other) never see an older view after a newer one.
        if path == "/":
            rx = re.compile(r"^(.*) from pid %d\n$" % t.pid)
        else:
            rx = re.compile(r"^(.*), %s!\n$" % path.rsplit("/", 1)[1])
        order = []
        for body in bodies:
            m = rx.match(body)
            assert m and m.group(1) in versions, (path, body)
            order.append(versions.index(m.group(1)))
        assert order == sorted(order), (path, order)
        assert order[-1] == len(versions) - 1, (path, order)
    hits = json.loads(get(t.port, "/stats"))["hits"]
    assert hits >= 1 + len(seen["/hello/a"]) + len(seen["/hello/b"]) + len(seen["/"]) \
        + len(versions) - 1, hits


def test_syntax_error_changes_nothing_and_the_server_keeps_serving(server):
    t = server
    hits = json.loads(get(t.port, "/stats"))["hits"]
    edit(t.views, 'return "Hello"', 'return "Broken" +')
    r = refresh(t.pid)
    assert r.rc == 1, r
    e = r.json["error"]
    assert e["kind"] == "failed", r
    assert "views.py" in e["message"] and "SyntaxError" in e["message"], r
    assert "unchanged" in e.get("hint", ""), r
    for _ in range(5):
        assert get(t.port, "/hello/bob") == "Hello, bob!\n"
    assert json.loads(get(t.port, "/stats"))["hits"] == hits + 5

    # The failed refresh kept the baseline: the next good edit goes in.
    edit(t.views, 'return "Broken" +', 'return "Fixed"')
    r = refresh(t.pid)
    assert r.rc == 0, r
    assert changes(r) == {("changed", "function", "flask_demo.views.greeting")}, r
    assert get(t.port, "/hello/bob") == "Fixed, bob!\n"


def test_new_helper_used_by_a_changed_view(server):
    t = server
    edit(t.views, "def hello(name):",
         "def shout(text):\n"
         "    return text.upper() + '!'\n"
         "\n\n"
         "def hello(name):")
    edit(t.views, 'return "%s, %s!\\n" % (greeting(), name)',
         'return "%s, %s!\\n" % (greeting(), shout(name))')
    r = refresh(t.pid)
    assert r.rc == 0, r
    assert changes(r) == {("added", "function", "flask_demo.views.shout"),
                          ("changed", "function", "flask_demo.views.hello")}, r
    assert get(t.port, "/hello/bob") == "Hello, BOB!!\n"
    assert get(t.port, "/").startswith("Hello from pid")
    assert live(t.pid, "views.shout('x')") == "'X!'"
