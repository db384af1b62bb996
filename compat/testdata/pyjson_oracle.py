#!/usr/bin/env python3
"""Line-oriented oracle for the Go fuzz tests (FuzzDumps, FuzzLoads,
FuzzSessionDecode, FuzzMatch), started once per fuzz worker process.

Each input line is a JSON request; each output line the answer:
  {"op": "dumps", "value": <typed value>} -> {"sorted_compact": str, "default": str} or {"error": type name}
  {"op": "loads", "input": base64}        -> {"ok": true, "value": typed, "default": str}
                                              or {"ok": false, "error": type name, "message": str}
  {"op": "session", "cookie": str, "now": int, "secret"?: str} -> {"ok": true, "value": typed} or {"ok": false, "error": class}
      (SECRET_KEY "test-secret" unless secret is given)
  {"op": "pystr", "cookie": str, "now": int} -> {"str": [code points], "repr": [code points]}: of the
      session's "v" as Flask opens the cookie
  {"op": "printable"} -> {"printable": base64 of one byte per code point, 1 if chr(c).isprintable()}
  {"op": "rules", "rules": [{"endpoint", "pattern", "methods", "strict", "auto_options"}]} -> {"ok": true}
  {"op": "route", "method": str, "path": [code points]}
      -> {"kind": "match", "endpoint": str, "args": {name: [type, str(value)]}, "allowed": [...]}
       | {"kind": "redirect", "location": str} | {"kind": "405", "allowed": [...]} | {"kind": "404"}
       | {"kind": "exception", "type": str}
Typed values use gen_vectors.py's encoding (pytyped.py).
"""

import sys

sys.dont_write_bytecode = True  # keep testdata/ free of __pycache__

import base64  # noqa: E402
import json  # noqa: E402

sys.path.insert(0, __import__("os").path.dirname(__file__))
from pytyped import at_flask_depth, dumps_like_flask, enc, loads_like_flask  # noqa: E402


def dec(t):
    k = t[0]
    if k == "n":
        return None
    if k == "b":
        return t[1]
    if k == "i":
        return int(t[1])
    if k == "f":
        return float.fromhex(t[1]) if t[1] not in ("nan", "inf", "-inf") else float(t[1])
    if k == "s":
        return "".join(chr(c) for c in t[1])
    if k == "l":
        return [dec(x) for x in t[1]]
    if k == "o":
        return {"".join(chr(c) for c in key): dec(v) for key, v in t[1]}
    raise ValueError(k)


_sessions = {}
_map = None


def session_op(req):
    import flask
    import itsdangerous
    import itsdangerous.timed
    from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

    secret = req.get("secret", "test-secret")
    if secret not in _sessions:
        app = flask.Flask("oracle")
        app.config["SECRET_KEY"] = secret
        _sessions[secret] = (app, SecureCookieSessionInterface().get_signing_serializer(app))
    app, ser = _sessions[secret]
    now = req["now"]
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: now
    try:
        with app.app_context():
            v = at_flask_depth(lambda: ser.loads(req["cookie"], max_age=31 * 24 * 3600))
        v = dict(SecureCookieSession(v))
    except itsdangerous.SignatureExpired:
        return {"ok": False, "error": "SignatureExpired"}
    except itsdangerous.BadPayload:
        return {"ok": False, "error": "BadPayload"}
    except itsdangerous.BadSignature:
        return {"ok": False, "error": "BadSignature"}
    except Exception as e:  # noqa: BLE001 - Flask answers 500
        return {"ok": False, "error": "Exception:" + type(e).__name__}
    return {"ok": True, "value": enc(v)}


def pystr_op(req):
    import flask
    import itsdangerous.timed
    from flask.sessions import SecureCookieSessionInterface

    app = flask.Flask("oracle")
    app.config["SECRET_KEY"] = "test-secret"
    ser = SecureCookieSessionInterface().get_signing_serializer(app)
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: req["now"]
    with app.app_context():
        v = ser.loads(req["cookie"])["v"]
    return {"str": [ord(c) for c in f"{v}"], "repr": [ord(c) for c in repr(v)]}


def printable_op(_):
    return {"printable": base64.b64encode(bytes(chr(c).isprintable() for c in range(0x110000))).decode()}


def rules_op(req):
    global _map
    from werkzeug.routing import Map, Rule

    rules = []
    for r in req["rules"]:
        methods = {m.upper() for m in (r["methods"] or ["GET"])}
        auto = r["auto_options"] and "OPTIONS" not in methods
        if auto:
            methods.add("OPTIONS")
        rule = Rule(r["pattern"], endpoint=r["endpoint"], methods=methods, strict_slashes=r["strict"])
        rules.append(rule)
    _map = Map(rules)
    return {"ok": True}


def route_op(req):
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    from werkzeug.routing import RequestRedirect

    path = "".join(chr(c) for c in req["path"])
    adapter = _map.bind("localhost", "/")
    try:
        endpoint, args = adapter.match(path, req["method"])
    except RequestRedirect as e:
        return {"kind": "redirect", "location": e.new_url}
    except MethodNotAllowed as e:
        return {"kind": "405", "allowed": sorted(e.valid_methods)}
    except NotFound:
        return {"kind": "404"}
    except Exception as e:  # noqa: BLE001
        return {"kind": "exception", "type": type(e).__name__}
    out = {"kind": "match", "endpoint": endpoint,
           "args": {k: [type(v).__name__, str(v)] for k, v in args.items()}}
    if req["method"] == "OPTIONS":
        out["allowed"] = sorted(adapter.allowed_methods(path))
    return out


def main():
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "session":
            out = session_op(req)
        elif req["op"] == "pystr":
            out = pystr_op(req)
        elif req["op"] == "printable":
            out = printable_op(req)
        elif req["op"] == "rules":
            out = rules_op(req)
        elif req["op"] == "route":
            out = route_op(req)
        elif req["op"] == "dumps":
            v = dec(req["value"])
            try:
                out = {"sorted_compact": dumps_like_flask(v, sort_keys=True, ensure_ascii=True, separators=(",", ":")),
                       "default": dumps_like_flask(v)}
            except Exception as e:  # noqa: BLE001
                out = {"error": type(e).__name__}
        else:
            data = base64.b64decode(req["input"])
            try:
                v = loads_like_flask(data)
            except RecursionError as e:
                out = {"ok": False, "error": "RecursionError", "message": str(e)}
            except ValueError as e:
                out = {"ok": False, "error": type(e).__name__, "message": str(e)}
            else:
                try:
                    default = dumps_like_flask(v)
                except RecursionError:
                    default = None
                out = {"ok": True, "value": enc(v), "default": default}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.setrecursionlimit(20000)
    main()
