"""The reload scenarios through the real command, on every interpreter.

Each scenario of tests/scenarios/scenarios.md (the spec) and of
tests/engine/extra.md (the engine's own additions) runs in a real Python
process of each interpreter; this test drives the real `pyhot
attach/status/refresh --json` against it from outside while its main thread
keeps running Python (tests/engine/run_scenarios.py --via cli does the
driving). The scenarios share a process per interpreter, each under its own
module name, imported before the one attach; a scenario marked `Options:
isolated` gets a process of its own, and one that times out or kills its
process fails alone (the others run again in a new one). Every selected
(scenario, interpreter) pair runs once, a few processes at a time, when the
first test asks; each pair is then reported as its own test.

A scenario with a `before` block is also rolled back once its `after` block
passed (`pyhot rollback <pid> <mod> --json`; the runner's docstring has the
steps): the objects from before the refresh must be back and the before
block hold again, a second rollback must be refused, and a refresh after the
rollback must work and roll back again. A failure of any of these fails
that (scenario, interpreter) test, with the step in brackets.
"""
import concurrent.futures
import importlib.util
import os

import pytest

from conftest import INTERPRETERS, PYHOT, REPO

_spec = importlib.util.spec_from_file_location(
    "run_scenarios", os.path.join(REPO, "tests", "engine", "run_scenarios.py"))
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

SCENARIOS = (runner.parse(os.path.join(REPO, "tests", "scenarios", "scenarios.md")) +
             runner.parse(os.path.join(REPO, "tests", "engine", "extra.md")))

# Known limits, documented in payload/patch/pyhot_patch.h: expected to fail
# in the after block, and only there (a failure of the rollback checks is
# never hidden).
XFAIL = {}

# Processes at a time: the machine's CPUs, at least two (a process spends
# part of its time waiting for pyhot).
JOBS = max(2, os.cpu_count() or 1)
TIMEOUT = 90

_results = {}


def _wanted(session):
    """{python: [scenario]} for the test_scenario items of this session."""
    want = {}
    for item in session.items:
        cs = getattr(item, "callspec", None)
        if getattr(item, "function", None) is test_scenario and cs is not None:
            want.setdefault(cs.params["python"], {})[cs.params["sc"]["id"]] = \
                cs.params["sc"]
    return {py: list(scs.values()) for py, scs in want.items()}


def _result(request, python, sc_id):
    if (sc_id, python) not in _results:
        os.environ.setdefault("PYHOT_BIN", PYHOT)
        work = [(py, b) for py, scs in _wanted(request.session).items()
                for b in runner.batches(scs)]
        work.sort(key=lambda w: -len(w[1]))   # the big batches first
        with concurrent.futures.ThreadPoolExecutor(JOBS) as ex:
            futs = [(py, ex.submit(runner.run_group, py, b, "cli", TIMEOUT))
                    for py, b in work]
            for py, f in futs:
                for k, r in f.result().items():
                    _results[(k, py)] = r
    if (sc_id, python) not in _results:   # not among the collected items
        sc = next(s for s in SCENARIOS if s["id"] == sc_id)
        _results[(sc_id, python)] = runner.run_one(python, sc, "cli", TIMEOUT)
    return _results[(sc_id, python)]


@pytest.mark.skipif(not os.path.exists(PYHOT), reason="build/pyhot not built")
@pytest.mark.parametrize("python", [pytest.param(p, id=n) for n, p in INTERPRETERS])
@pytest.mark.parametrize("sc", [pytest.param(s, id="%s-%s" % (s["id"], s["level"]))
                                for s in SCENARIOS])
def test_scenario(sc, python, request):
    r = _result(request, python, sc["id"])
    if r["status"] == "SKIP":
        pytest.skip(r.get("error") or "skipped")
    if sc["id"] in XFAIL and r["status"] != "PASS" and r.get("where") == "after":
        pytest.xfail(XFAIL[sc["id"]])
    assert r["status"] == "PASS", "%s [%s]: %s\n%s\nresponses: %s" % (
        sc["id"], r.get("where"), r.get("error"), r.get("tb", ""),
        [x for x in r.get("responses", []) if not x.get("ok")][:2])
