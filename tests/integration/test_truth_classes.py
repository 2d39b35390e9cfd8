"""Truthful refresh: what a class computes from its own body at creation
is computed again when a refresh adds a method to it.

  - a Flask MethodView (pyenv 3.11 has Flask): a delete() added to a view
    class answers a real HTTP DELETE (View.methods and the URL rule's
    methods recomputed);
  - a plain class whose __init_subclass__ computes an attribute from the
    class body, and a class decorator that does the same, on every
    interpreter.
"""
import http.client
import subprocess

import pytest

from conftest import INTERPRETERS, free_port, wait_until
from test_truth_scope import alive, changes, edit, refresh, start_app, write

PY311 = dict(INTERPRETERS).get("3.11")

VIEWS = """\
    from flask import Flask
    from flask.views import MethodView

    app = Flask(__name__)


    class Item(MethodView):
        def get(self, key):
            return "got " + key


    app.add_url_rule("/item/<key>", view_func=Item.as_view("item"))
    """

SERVE = """\
    import os
    import threading

    from werkzeug.serving import make_server

    import views

    server = make_server("127.0.0.1", int(os.environ["TRUTH_PORT"]), views.app,
                         threaded=True)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    """


def call(port, method, path):
    """(status, body) of one request over a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def flask_311():
    if not PY311:
        pytest.fail("no pyenv 3.11.7 on this machine", pytrace=False)
    probe = subprocess.run([PY311, "-c", "import flask, werkzeug.serving"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    if probe.returncode:
        pytest.fail("pyenv 3.11.7 has no Flask: `~/.pyenv/versions/3.11.7/bin/python3.11 "
                    "-m pip install flask`", pytrace=False)
    return PY311


def test_method_view_gets_a_new_method(target, tmp_path):
    write(tmp_path, {"views.py": VIEWS, "serve.py": SERVE})
    port = free_port()
    t = start_app(target, tmp_path, flask_311(), imports=["serve"],
                  env={"TRUTH_PORT": str(port)})
    wait_until(lambda: call(port, "GET", "/item/a") == (200, "got a"), timeout=10,
               step=0.02, what="the Flask server to answer")
    assert call(port, "DELETE", "/item/a")[0] == 405
    edit(tmp_path / "views.py", '        return "got " + key\n',
         '        return "got " + key\n\n'
         '    def delete(self, key):\n'
         '        return "deleted " + key\n')

    r = refresh(t, "views")
    assert r.rc == 0, r
    assert ("added", "method", "views.Item.delete") in changes(r, "views"), r
    assert t.run("sorted(m('views').Item.methods)") == ["DELETE", "GET"]
    # Served for real: the view class and the URL rule know DELETE now.
    assert call(port, "DELETE", "/item/a") == (200, "deleted a")
    assert call(port, "GET", "/item/b") == (200, "got b")
    alive(t)


SHAPES = """\
    REGISTRY = {}


    class Base:
        def __init_subclass__(cls, **kw):
            super().__init_subclass__(**kw)
            cls.fields = sorted(n for n, v in vars(cls).items()
                                if callable(v) and not n.startswith("_"))


    def collect(cls):
        cls.verbs = sorted(n for n in vars(cls) if n.startswith("do_"))
        REGISTRY[cls.__name__] = cls
        return cls


    class Form(Base):
        def name(self):
            return "n"

        def age(self):
            return 1


    @collect
    class Handler:
        def do_get(self):
            return "get"
    """

SHAPES_STATE = """\
s = m('shapes')
[s.Form.fields, s.Handler.verbs, s.REGISTRY['Handler'] is s.Handler,
 s.Form is Form, hasattr(form, 'email') and form.email(),
 hasattr(s.Handler, 'do_put') and s.Handler().do_put()]
"""


def test_init_subclass_and_class_decorator_see_a_new_method(target, tmp_path, python):
    write(tmp_path, {"shapes.py": SHAPES})
    t = start_app(target, tmp_path, python, imports=["shapes"])
    t.run("Form = m('shapes').Form; form = Form()")
    assert t.run(SHAPES_STATE) == [["age", "name"], ["do_get"], True, True, False, False]
    edit(tmp_path / "shapes.py", '        return 1\n',
         '        return 1\n\n'
         '    def email(self):\n'
         '        return "e"\n')
    edit(tmp_path / "shapes.py", '        return "get"\n',
         '        return "get"\n\n'
         '    def do_put(self):\n'
         '        return "put"\n')

    r = refresh(t, "shapes")
    assert r.rc == 0, r
    got = changes(r, "shapes")
    assert {("added", "method", "shapes.Form.email"),
            ("added", "method", "shapes.Handler.do_put")} <= set(got), r
    # The classes were patched in place (an instance made before has the new
    # method) and what they computed from their body includes it.
    assert t.run(SHAPES_STATE) == [["age", "email", "name"], ["do_get", "do_put"],
                                   True, True, "e", "put"]
    alive(t)


def test_method_view_rollback_takes_the_method_back(target, tmp_path):
    """What the recompute changed (View.methods, the view's copy, the URL
    rule) is in the undo log: a rollback answers 405 again."""
    from conftest import pyhot
    write(tmp_path, {"views.py": VIEWS, "serve.py": SERVE})
    port = free_port()
    t = start_app(target, tmp_path, flask_311(), imports=["serve"],
                  env={"TRUTH_PORT": str(port)})
    wait_until(lambda: call(port, "GET", "/item/a") == (200, "got a"), timeout=10,
               step=0.02, what="the Flask server to answer")
    edit(tmp_path / "views.py", '        return "got " + key\n',
         '        return "got " + key\n\n'
         '    def delete(self, key):\n'
         '        return "deleted " + key\n')
    r = refresh(t, "views")
    assert r.rc == 0, r
    assert call(port, "DELETE", "/item/a") == (200, "deleted a")
    rb = pyhot("rollback", t.pid, "views", json_out=True)
    assert rb.rc == 0, rb
    assert t.run("sorted(m('views').Item.methods)") == ["GET"]
    assert call(port, "DELETE", "/item/a")[0] == 405
    assert call(port, "GET", "/item/b") == (200, "got b")
    alive(t)
