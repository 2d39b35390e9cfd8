"""Truthful refresh: a function that is running when it is refreshed keeps
its old code until it returns, and the report says which ones do.

A worker thread ("worker-1") loops in loop(), an asyncio task ("ticker")
loops in tick(), a generator is suspended in counter(): all three functions
are edited, and so is step(), which each of them calls and which is not
running at the time. The report names each running one (thread or task
name, line); step() changes for real, in the thread and in the task.

Proposed JSON (not in today's report): each module's report has a list
"running" of {"name", "kind": "thread"|"task"|"generator", "thread" (thread
name) | "task" (task name), "line"}; the text says the function "keeps the old
code until it returns".
"""
import textwrap

import pytest

from test_truth_scope import alive, changes, edit, module_report, refresh, start_app, write

WORK = """\
    import asyncio
    import threading
    import time

    import __main__


    def step():
        return "step-v1"


    def loop():
        last = None
        while True:
            v = step()
            if v != last:
                __main__.say("worker " + v)
                last = v
            time.sleep(0.01)


    async def tick():
        last = None
        while True:
            v = step()
            if v != last:
                __main__.say("ticker " + v)
                last = v
            await asyncio.sleep(0.01)


    def counter():
        n = 0
        while True:
            n += 1
            yield n


    def run_ticker():
        aio = asyncio.new_event_loop()
        aio.run_until_complete(aio.create_task(tick(), name="ticker"))


    GEN = counter()
    next(GEN)
    threading.Thread(target=loop, name="worker-1", daemon=True).start()
    threading.Thread(target=run_ticker, name="aio", daemon=True).start()
    """


def lines_of(src, name):
    """The range of line numbers of def name in src (up to the next blank
    line)."""
    lines = src.splitlines()
    first = next(i for i, l in enumerate(lines) if l.lstrip().startswith(
        ("def %s(" % name, "async def %s(" % name)))
    last = next((i for i in range(first, len(lines)) if not lines[i].strip()), len(lines))
    return range(first + 1, last + 1)


def edit_work(path):
    edit(path, "time.sleep(0.01)", "time.sleep(0.02)")
    edit(path, "await asyncio.sleep(0.01)", "await asyncio.sleep(0.02)")
    edit(path, "n += 1", "n += 2")
    edit(path, '"step-v1"', '"step-v2"')


def check_running(mod, src):
    """The report names the thread, the task and the generator, each at a
    line of its function in the old file."""
    running = mod.get("running")       # proposed field
    assert running, mod
    by_name = {r["name"]: r for r in running}
    # step() too, when the thread or the task happened to be in it.
    assert set(by_name) - {"work.step"} == {"work.loop", "work.tick", "work.counter"}, running
    want = {"work.loop": ("thread", "thread", "worker-1"),
            "work.tick": ("task", "task", "ticker"),
            "work.counter": ("generator", None, None)}
    for name, (kind, key, label) in want.items():
        r = by_name[name]
        assert r["kind"] == kind, running
        if key:
            assert r[key] == label, running
        assert r["line"] in lines_of(src, name.split(".")[1]), running


@pytest.mark.parametrize("view", ["json", "text"])
def test_running_functions_are_named(target, tmp_path, python, view):
    write(tmp_path, {"work.py": WORK})
    src = textwrap.dedent(WORK)
    t = start_app(target, tmp_path, python, imports=["work"])
    t.wait_for("^worker step-v1$")
    t.wait_for("^ticker step-v1$")
    edit_work(tmp_path / "work.py")

    r = refresh(t, "work", json_out=view == "json")
    assert r.rc == 0, r
    if view == "json":
        got = changes(r, "work")
        for name in ("loop", "tick", "counter", "step"):
            assert ("changed", "function", "work." + name) in got, r
        check_running(module_report(r, "work"), src)
    else:
        for label in ("worker-1", "ticker", "work.counter"):
            line = next((l for l in r.out.splitlines() if label in l
                         and "until it returns" in l), None)
            assert line, (label, r)
    # step() is not running: it changed for real, in the thread and the task.
    t.wait_for("^worker step-v2$")
    t.wait_for("^ticker step-v2$")
    # The suspended generator keeps the old code (+1), as the report says; a
    # new one runs the new code (+2).
    assert t.run("next(m('work').GEN)") == 2
    assert t.run("next(m('work').counter())") == 2
    alive(t)
