"""Keep pytest's assertion rewriting on the functions a refresh changed in a
test module (pyhot.pytest's loop).

pytest imports test modules and conftest.py through its own loader, which
rewrites every assert into code that explains a failure. The engine
compiles the saved file as plain Python, so a changed test function would
lose that: its failure would say a bare "AssertionError". After such a
refresh this compiles the file again the way pytest does and gives each
changed function the rewritten code of the same name. The helper globals
the rewritten code uses (@py_builtins, @pytest_ar) are already in the
module from its import.
"""

import ast

_CO_OPTIMIZED = 0x1   # a function's code (a class body's has not the flag)


def rewritten(mod):
    """Whether pytest's assertion rewriter loaded mod."""
    loader = getattr(getattr(mod, "__spec__", None), "loader", None)
    return type(loader).__name__ == "AssertionRewritingHook"


def _codes(code, prefix=""):
    """{qualname: code} of every function and class body compiled in code."""
    out = {}
    for c in code.co_consts:
        if not hasattr(c, "co_code"):
            continue
        if not prefix:
            qual = c.co_name
        elif code.co_flags & _CO_OPTIMIZED:
            qual = prefix + ".<locals>." + c.co_name
        else:
            qual = prefix + "." + c.co_name
        out[qual] = c
        out.update(_codes(c, qual))
    return out


def _live(mod, qualname):
    """The innermost function at qualname in mod, or None."""
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    obj = getattr(obj, "__func__", obj)
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj if hasattr(obj, "__code__") else None


def rewrite_changed(mod, names, config):
    """Give the functions of mod named in names (qualified names with the
    module's prefix, as the refresh report has them) their assert-rewritten
    code. Returns how many got it."""
    from _pytest.assertion.rewrite import rewrite_asserts

    path = mod.__file__
    with open(path, "rb") as f:
        source = f.read()
    tree = ast.parse(source, filename=path)
    rewrite_asserts(tree, source, path, config)
    codes = _codes(compile(tree, path, "exec", dont_inherit=True))
    done = 0
    for name in names:
        qual = name[len(mod.__name__) + 1:] if name.startswith(mod.__name__ + ".") else name
        fn, code = _live(mod, qual), codes.get(qual)
        if fn is None or code is None or fn.__code__.co_freevars != code.co_freevars:
            continue
        fn.__code__ = code
        done += 1
    return done
