"""Typed value encoding shared by gen_vectors.py and pyjson_oracle.py (see gen_vectors.py)."""

import base64
import json
import sys
import datetime as dt
import math
import uuid

from markupsafe import Markup


def cps(s):
    return [ord(c) for c in s]


def enc(v):
    if v is None:
        return ["n"]
    if isinstance(v, bool):
        return ["b", v]
    if isinstance(v, int):
        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # the value itself may be over Python's 4300-digit limit
        try:
            return ["i", str(v)]
        finally:
            sys.set_int_max_str_digits(old)
    if isinstance(v, float):
        if math.isnan(v):
            return ["f", "nan"]
        if math.isinf(v):
            return ["f", "inf" if v > 0 else "-inf"]
        return ["f", v.hex()]
    if isinstance(v, Markup):
        return ["m", cps(str(v))]
    if isinstance(v, str):
        return ["s", cps(v)]
    if isinstance(v, tuple):
        return ["t", [enc(x) for x in v]]
    if isinstance(v, list):
        return ["l", [enc(x) for x in v]]
    if isinstance(v, dict):
        if v and all(isinstance(k, int) and not isinstance(k, bool) for k in v):
            return ["im", [[str(k), enc(x)] for k, x in v.items()]]
        if not all(isinstance(k, str) for k in v):
            return ["x", "dict with non-str keys"]
        return ["o", [[cps(k), enc(x)] for k, x in v.items()]]
    if isinstance(v, bytes):
        return ["y", base64.b64encode(v).decode()]
    if isinstance(v, uuid.UUID):
        return ["u", v.hex]
    if isinstance(v, dt.datetime):
        return ["d", int(v.timestamp())]
    raise TypeError(type(v))


# The deepest nesting request.get_json() decodes in a view under a gunicorn
# sync worker (measured through vector_app.py's /json-type): CPython counts
# each nested container against the recursion limit (1000), minus the frames
# already on the stack. at_flask_depth runs fn with the stack as deep as it
# is in such a view, so json.loads/json.dumps hit the same limits whatever
# the caller's own depth.
FLASK_MAX_DEPTH = 971


def _depth():
    f, n = sys._getframe(1), 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


def _run_at(target, fn):
    if _depth() >= target:
        return fn()
    return _run_at(target, fn)


def _max_loads_depth(target):
    lo, hi = 1, 3000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _run_at(target, lambda: json.loads("[" * mid + "]" * mid))
            lo = mid
        except RecursionError:
            hi = mid
    return lo


_TARGET = None


def at_flask_depth(fn):
    """fn() run at the stack depth of a Flask view under gunicorn."""
    global _TARGET
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        if _TARGET is None:
            for t in range(1, 300):
                d = _max_loads_depth(t)
                if d == FLASK_MAX_DEPTH:
                    _TARGET = t
                    break
                if d < FLASK_MAX_DEPTH:
                    raise RuntimeError("cannot calibrate the recursion depth")
        return _run_at(_TARGET, fn)
    finally:
        sys.setrecursionlimit(old)


def loads_like_flask(data):
    """json.loads(data) with the recursion headroom of a Flask view."""
    return at_flask_depth(lambda: json.loads(data))


def dumps_like_flask(v, **kw):
    """json.dumps(v, **kw) with the recursion headroom jsonify has in a Flask
    view: at most 970 nested containers, as measured through /json-deep."""
    return at_flask_depth(lambda: _dumps(v, kw))


def _dumps(v, kw):
    # One frame more than loads_like_flask: jsonify sits one call deeper.
    return json.dumps(v, **kw)
