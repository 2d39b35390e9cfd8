"""The views of the demo service. The demo edits this file and refreshes it."""
import os

HITS = {"count": 0}


def greeting():
    return "Hello"


def index():
    HITS["count"] += 1
    return "%s from pid %d\n" % (greeting(), os.getpid())


def hello(name):
    HITS["count"] += 1
    return "%s, %s!\n" % (greeting(), name)


def stats():
    return {"hits": HITS["count"], "pid": os.getpid()}
