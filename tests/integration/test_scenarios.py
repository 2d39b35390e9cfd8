"""The reload scenarios through the real command, on every interpreter.

Each scenario of tests/scenarios/scenarios.md (the spec) and of
tests/engine/extra.md (the engine's own additions) runs in a fresh Python
process; this test drives the real `pyhot attach/status/refresh --json`
against it from outside while its main thread keeps running Python
(tests/engine/run_scenarios.py --via cli does the driving). The scenarios of
one interpreter run in parallel once; each (scenario, interpreter) pair is
then reported as its own test.
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

# Known limits, documented in payload/patch/pyhot_patch.h.
XFAIL = {
    "S15": "a closure made before the refresh and held only by the caller is "
           "out of the engine's reach without walking the heap",
}

_results = {}


def _results_for(python):
    if python not in _results:
        os.environ.setdefault("PYHOT_BIN", PYHOT)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futs = {sc["id"]: ex.submit(runner.run_one, python, sc, "cli", 90)
                    for sc in SCENARIOS}
            _results[python] = {k: f.result() for k, f in futs.items()}
    return _results[python]


@pytest.mark.skipif(not os.path.exists(PYHOT), reason="build/pyhot not built")
@pytest.mark.parametrize("python", [pytest.param(p, id=n) for n, p in INTERPRETERS])
@pytest.mark.parametrize("sc", [pytest.param(s, id="%s-%s" % (s["id"], s["level"]))
                                for s in SCENARIOS])
def test_scenario(sc, python):
    r = _results_for(python)[sc["id"]]
    if r["status"] == "SKIP":
        pytest.skip(r.get("error") or "skipped")
    if sc["id"] in XFAIL and r["status"] != "PASS":
        pytest.xfail(XFAIL[sc["id"]])
    assert r["status"] == "PASS", "%s [%s]: %s\n%s\nresponses: %s" % (
        sc["id"], r.get("where"), r.get("error"), r.get("tb", ""),
        [x for x in r.get("responses", []) if not x.get("ok")][:2])
