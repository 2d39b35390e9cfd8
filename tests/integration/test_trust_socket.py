"""The command's own check of the agent's socket path (cli/client_trust.c):
something there that is not a socket is refused, named, and left alone;
nothing is sent to it and the target is not attached to."""
import os

import pytest

from conftest import pyhot, sock_path


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_agent_path_that_is_not_a_socket_is_refused(target, kind):
    t = target("sleep")
    path = sock_path(t.pid)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if kind == "file":
        with open(path, "w") as f:
            f.write("not an agent\n")
    else:
        os.mkfifo(path, 0o600)
    try:
        r = pyhot("status", t.pid, json_out=True)
        assert r.rc == 1, r
        msg = r.json["error"]["message"]
        assert msg.startswith("trust:") and "is not a socket" in msg and path in msg, r
        assert os.path.exists(path) and not os.path.isdir(path)
        if kind == "file":
            with open(path) as f:
                assert f.read() == "not an agent\n"
        assert t.tracer() == 0
    finally:
        os.unlink(path)
    t.assert_working()
