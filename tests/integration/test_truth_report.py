"""Truthful refresh: what the report says.

  - `--dry-run` reports the same changes and counts as the refresh then
    makes;
  - the first line of an error is never cut in the middle of a word, in
    the refresh's message and in `pyhot status`'s last error;
  - a named refresh with nothing to do says the module is unchanged, not
    "refreshed 1 module ... 0 changed".
"""
import re

from conftest import pyhot
from test_truth_scope import alive, changes, edit, refresh, start_app, write

SHOP = """\
    class Cart:
        def total(self):
            return 1

        def count(self):
            return 1

        def same(self):
            return 0


    def tax():
        return 1
    """

SHOP_STATE = "s = m('shop'); [s.Cart().total(), s.Cart().count(), s.Cart().same(), s.tax()]"


def counts(text):
    """The numbers of the count line of a refresh's text."""
    m = re.search(r"(\d+) changed, (\d+) added, (\d+) removed, (\d+) kept, (\d+) failed",
                  text)
    assert m, text
    return dict(zip(("changed", "added", "removed", "kept", "failed"), map(int, m.groups())))


def change_lines(text):
    return [l for l in text.splitlines() if l.startswith("  ")]


def test_dry_run_reports_what_the_refresh_does(target, tmp_path, python):
    write(tmp_path, {"shop.py": SHOP})
    t = start_app(target, tmp_path, python, imports=["shop"])
    for method in ("total", "count"):
        edit(tmp_path / "shop.py", "def %s(self):\n        return 1" % method,
             "def %s(self):\n        return 2" % method)
    edit(tmp_path / "shop.py", "def tax():\n    return 1", "def tax():\n    return 2")

    dry = refresh(t, "shop", dry_run=True)
    dry_text = refresh(t, "shop", dry_run=True, json_out=False)
    assert dry.rc == 0 and dry_text.rc == 0, (dry, dry_text)
    assert t.run(SHOP_STATE) == [1, 1, 0, 1]          # nothing changed yet
    real = refresh(t, "shop")
    assert real.rc == 0, real
    assert t.run(SHOP_STATE) == [2, 2, 0, 2]

    assert changes(dry, "shop") == changes(real, "shop"), (dry, real)
    assert {("changed", "method", "shop.Cart.total"), ("changed", "method", "shop.Cart.count"),
            ("changed", "function", "shop.tax")} <= set(changes(real, "shop")), real
    summary = real.json["modules"][0]["summary"]
    assert dry.json["modules"][0]["summary"] == summary, (dry, real)
    assert counts(dry_text.out) == summary, dry_text
    assert len(change_lines(dry_text.out)) == len(changes(real, "shop")), (dry_text, real)
    alive(t)


# -- messages ---------------------------------------------------------------------

def long_dir(d):
    """A directory under d whose path is over 600 characters of words (so
    that an error naming a file in it is longer than a 512-byte buffer),
    laid out so that a cut at byte 511 of "refresh: PATH" falls in the middle
    of a word."""
    word = "wordy%02d" + "x" * 40
    start = len("refresh: ") + len(str(d)) + 1
    pad = 0
    while True:
        parts = ["p" * (pad + 1)] + [" ".join(word % (8 * k + i) for i in range(4))
                                      for k in range(4)]
        at = 511 - start
        path = "/".join(parts)
        if 2 < at < len(path) - 2 and path[at - 2:at + 2].isalnum():
            return d.joinpath(*parts)
        pad += 1


def words(text):
    return set(w for w in re.split(r"[\s/:,]+", text) if w)


def cut_mid_word(line, known):
    """Whether line ends in a piece of a word: its last word (an ellipsis
    aside) is not a word of the whole message (known)."""
    line = re.sub(r"(\.\.\.|\u2026)$", "", line.rstrip()).rstrip()
    last = re.split(r"[\s/:,]+", line)[-1]
    return last not in known


def test_long_error_is_not_cut_mid_word(target, tmp_path, python):
    deep = long_dir(tmp_path)
    write(deep, {"broken.py": "def f():\n    return 1\n"})
    t = start_app(target, tmp_path, python, imports=["broken"], dirs=[deep])
    (deep / "broken.py").write_text("def f(:\n    return 1\n")

    r = refresh(t, "broken")
    assert r.rc == 1, r
    err = r.json["error"]
    known = words(str(deep)) | words(err.get("traceback") or "") | {"refresh", "SyntaxError"}
    first = err["message"].splitlines()[0]
    assert not cut_mid_word(first, known), first
    text = refresh(t, "broken", json_out=False)
    assert text.rc == 1, text
    assert not cut_mid_word(text.err.splitlines()[0], known), text

    st = pyhot("status", t.pid, json_out=True)
    last = st.json["status"]["agent"]["last_error"]
    assert last and not cut_mid_word(last.splitlines()[0], known), last
    st = pyhot("status", t.pid)
    line = next(l for l in st.out.splitlines() if l.strip().startswith("last error:"))
    assert not cut_mid_word(line, known), line
    alive(t)


def test_named_refresh_with_nothing_to_do_says_unchanged(target, tmp_path, python):
    write(tmp_path, {"calm.py": "def f():\n    return 1\n"})
    t = start_app(target, tmp_path, python, imports=["calm"])
    r = refresh(t, "calm", json_out=False)
    assert r.rc == 0, r
    assert not re.search(r"refreshed 1 module in pid \d+: 0 changed", r.out), r
    assert "unchanged" in r.out, r
    assert t.run("m('calm').f()") == 1
    alive(t)
