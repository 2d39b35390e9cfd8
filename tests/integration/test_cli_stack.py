"""pyhot stack: the Python stack of every thread, with the thread names,
read at a safe point; a target stuck in C holding the GIL gets the native
stacks of its threads instead (exit 124)."""
import os
import re
import subprocess

import pytest

from conftest import pyhot, sock_path

STACK_TARGET = '''
import sys, threading, time

def work_loop(stop):
    while not stop.wait(0.01):
        pass

def inner():
    print("ready", flush=True)
    while True:
        time.sleep(0.05)   # MARK-INNER

def outer():
    inner()   # MARK-OUTER

stop = threading.Event()
threading.Thread(target=work_loop, args=(stop,), name="worker-a", daemon=True).start()
outer()
'''


@pytest.fixture
def stack_target(target, tmp_path):
    script = tmp_path / "stacky.py"
    script.write_text(STACK_TARGET)

    def start(python=None):
        return target(script=str(script), python=python)
    return start


def test_stack_of_named_threads(stack_target, python):
    t = stack_target(python)
    r = pyhot("stack", t.pid)
    assert r.rc == 0, r
    out = r.out
    assert 'Thread "MainThread" (tid %d, main):' % t.pid in out, r
    assert 'Thread "worker-a" (tid ' in out, r
    main = out.split('Thread "worker-a"')[0] if out.index("MainThread") < out.index("worker-a") \
        else out.split('Thread "MainThread"')[1]
    # Most recent call last, with the source lines.
    i_outer, i_inner = main.index("in outer"), main.index("in inner")
    assert i_outer < i_inner, r
    assert "inner()   # MARK-OUTER" in main and "time.sleep(0.05)   # MARK-INNER" in main, r
    assert "in work_loop" in out, r

    j = pyhot("stack", t.pid, json_out=True)
    assert j.rc == 0, j
    names = {th["name"]: th for th in j.json["threads"]}
    assert names["MainThread"]["main"] is True and names["MainThread"]["tid"] == t.pid
    assert names["worker-a"]["daemon"] is True
    funcs = [f["function"] for f in names["MainThread"]["frames"]]
    assert funcs[-2:] == ["outer", "inner"], funcs
    assert j.json["python_frames_read"] is True
    t.assert_working(more=0)


def test_stack_of_a_target_stuck_in_c(target, tmp_path):
    go = tmp_path / "go"
    t = target("stuck", args=[str(go)])
    assert pyhot("attach", t.pid).rc == 0
    go.write_text("")
    t.wait_for("^stuck")
    r = pyhot("stack", t.pid, "--timeout=0.5")
    assert r.rc == 124, r
    assert "did not reach a safe point" in r.out and "Python frames were not read" in r.out, r
    assert "pyhot: stack: pid %d did not reach a safe point" % t.pid in r.err, r
    assert "pyhot interrupt %d stops that call" % t.pid in r.err, r
    assert 'Thread "' in r.out and "(tid %d, main, state" % t.pid in r.out, r
    assert "sleep" in r.out, r     # libc sleep() called through ctypes

    j = pyhot("stack", t.pid, "--timeout=0.5", json_out=True)
    assert j.rc == 124 and j.json["error"]["kind"] == "timeout", j
    assert j.json["python_frames_read"] is False
    main = [n for n in j.json["native"] if n["main"]][0]
    assert any("sleep" in f for f in main["frames"]), main
    # pyenv's libpython has its local symbols: who holds the GIL shows.
    assert main["gil"] == "probably-held", main
    assert any(n["gil"] == "waiting" for n in j.json["native"]), j
    assert "probably holds the GIL" in r.out, r
    assert len(j.json["native"]) >= 2


def test_stack_errors():
    r = pyhot("stack", json_out=True)
    assert r.rc == 2, r
    r = pyhot("stack", "999999999", json_out=True)
    assert r.rc == 3 and r.json["error"]["kind"] == "attach", r


def test_attaches_quietly_first(stack_target):
    """No agent yet: stack attaches, prints only the stacks, and tells of
    the attach with -v only (cli_attach_quiet)."""
    t = stack_target()
    r = pyhot("stack", t.pid, "-v")
    assert r.rc == 0, r
    assert r.out.startswith("Thread "), r
    assert "attached to pid %d, agent at %s" % (t.pid, sock_path(t.pid)) in r.err, r
    r = pyhot("stack", t.pid, json_out=True)
    assert r.rc == 0 and r.json["attach"]["agent"]["reused"] is True, r
    r = pyhot("stack", t.pid, "-q")
    assert r.rc == 0 and r.out == "" and r.err == "", r


ASYNCIO_TARGET = '''
import asyncio


async def handle(reader, writer):
    await reader.read(100)   # MARK-HANDLE


async def ticker():
    while True:
        await asyncio.sleep(0.05)   # MARK-TICK


async def take(q):
    return await q.get()


async def worker(q):
    item = await take(q)   # MARK-WORKER


async def waiter(t):
    await t   # MARK-WAITER


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_event_loop()
    q = asyncio.Queue()
    t = loop.create_task(ticker(), name="ticker")
    loop.create_task(worker(q), name="queue-worker")
    loop.create_task(waiter(t), name="waits-on-ticker")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()   # MARK-SERVE

asyncio.run(main())
'''


def test_stack_shows_asyncio_tasks(target, tmp_path, python):
    """An asyncio server: every task of its loop with its name, coroutine
    and await chain, read from asyncio's registry without the program's
    help."""
    script = tmp_path / "aserver.py"
    script.write_text(ASYNCIO_TARGET)
    t = target(script=str(script), python=python)
    r = pyhot("stack", t.pid)
    assert r.rc == 0, r
    assert "\nEvent loop <_UnixSelectorEventLoop running=True" in r.out, r
    assert 'in thread "MainThread" (tid %d): ' % t.pid in r.out, r
    assert 'Task "ticker" (coroutine ticker):' in r.out, r
    assert "await asyncio.sleep(0.05)   # MARK-TICK" in r.out, r
    # The chain goes through every coroutine awaited, outermost first.
    worker = r.out.split('Task "queue-worker" (coroutine worker):')[1].split("Task ")[0]
    assert worker.index("MARK-WORKER") < worker.index("return await q.get()"), r
    assert "in get" in worker and "waiting on <Future pending" in worker, r

    j = pyhot("stack", t.pid, json_out=True)
    assert j.rc == 0, j
    [loop] = j.json["asyncio"]
    assert loop["running"] is True and loop["thread"] is not None, loop
    tasks = {task["name"]: task for task in loop["tasks"]}
    # At most one task is the one running when the stack was taken.
    assert sum(task["current"] is True for task in loop["tasks"]) <= 1, loop
    assert {"ticker", "queue-worker", "waits-on-ticker"} <= set(tasks), tasks
    assert tasks["waits-on-ticker"]["coroutine"] == "waiter"
    assert "name='ticker'" in tasks["waits-on-ticker"]["waiting_on"], tasks
    assert [a["function"] for a in tasks["queue-worker"]["awaits"]][:3] == \
        ["worker", "take", "get"], tasks
    # The connection's handler is a task of the server's, named by asyncio.
    handlers = [x for x in loop["tasks"] if x["coroutine"] == "handle"]
    assert handlers and handlers[0]["awaits"][0]["source"].endswith("# MARK-HANDLE"), loop
    t.assert_working(more=0)


def test_stack_without_asyncio_says_nothing_of_it(stack_target):
    t = stack_target()
    j = pyhot("stack", t.pid, json_out=True)
    assert j.rc == 0 and j.json["asyncio"] is None, j
    assert "Event loop" not in pyhot("stack", t.pid).out


FRAME_RX = re.compile(r"^#(\d+)\s+0x[0-9a-f]+ in (\S+)\+0x([0-9a-f]+) \((.*)\)$")


def func_symbols(path):
    """{name: [(value, size)]} of the FUNC symbols of .symtab and .dynsym."""
    out = subprocess.run(["readelf", "-sW", path], capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] in ("FUNC", "IFUNC") and f[6] != "UND":
            syms.setdefault(f[7].split("@")[0], []).append((int(f[1], 16), int(f[2])))
    return syms


def test_native_frames_are_named_honestly(target, tmp_path, python):
    """A native frame is named after the function whose symbol holds it, or
    object+offset; never after the nearest symbol below (in a stripped
    libc, __libc_start_call_main used to show as __libc_init_first+0x8a, a
    function one byte long)."""
    go = tmp_path / "go"
    t = target("stuck", python=python, args=[str(go)])
    assert pyhot("attach", t.pid).rc == 0
    go.write_text("")
    t.wait_for("^stuck")
    j = pyhot("stack", t.pid, "--timeout=0.5", json_out=True)
    assert j.rc == 124, j
    frames = [f for n in j.json["native"] if n["main"] for f in n["frames"]]
    symbols, by_offset = {}, 0
    for line in frames:
        m = FRAME_RX.match(line)
        assert m, line
        n, name, off, path = int(m.group(1)), m.group(2), int(m.group(3), 16), m.group(4)
        if not os.path.exists(path):
            continue     # the payload's memfd
        syms = symbols.setdefault(path, func_symbols(path))
        if name == os.path.basename(path):
            by_offset += 1
            at = off - (1 if n else 0)
            holders = [s for ranges in syms.values() for (v, size) in ranges
                       if v <= at < v + size]
            assert not holders, "%s: a symbol holds it" % line
        else:
            assert any(off - (1 if n else 0) < size for _, size in syms.get(name, [])), \
                "%s: %s is shorter than that" % (line, name)
    assert by_offset, frames     # __libc_start_call_main is static in libc
