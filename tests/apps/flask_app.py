"""A small real Flask service for pyhot's demo and tests.

    python3.11 tests/apps/flask_app.py PORT

Listens on 127.0.0.1:PORT (reloader and debugger off: pyhot is the
reloader). The views live in flask_demo/views.py, a module of their own, so
that the demo can edit them and refresh them in place. Prints "ready PID"
once the socket listens.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from flask_demo.app import create_app  # noqa: E402


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    app = create_app()
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    print("ready", os.getpid(), "http://127.0.0.1:%d/" % server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
