#!/usr/bin/env python3
"""Generate compat/testdata/vectors.json from the installed Flask, Werkzeug and
itsdangerous (and a real gunicorn serving vector_app.py).

Run from the repository root (after legacy/setup.sh, which provides .pydeps):

    PYTHONPATH=.pydeps python3 compat/testdata/gen_vectors.py

The output is deterministic for a given set of library versions (random cases
use a fixed seed; the session clock is frozen). Values are carried in a typed
form so Go can rebuild them exactly:
    ["n"] None, ["b", bool], ["i", "decimal"], ["f", float.hex() | "nan" | "inf" | "-inf"],
    ["s", [code points]], ["l", [...]], ["t", [...]] tuple, ["o", [[[code points], value], ...]] dict,
    ["im", [["decimal", value], ...]] int-keyed dict, ["y", base64] bytes, ["m", [code points]] Markup,
    ["u", hex] UUID, ["d", unix seconds] aware datetime.
"""

import sys

sys.dont_write_bytecode = True  # keep testdata/ free of __pycache__

import base64  # noqa: E402
import datetime as dt
import json
import math
import os
import random
import socket
import struct
import subprocess  # noqa: E402
import time
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
CLOCK = 1700000000
os.environ["VECTOR_CLOCK"] = str(CLOCK)

import flask  # noqa: E402
import itsdangerous  # noqa: E402
import itsdangerous.timed  # noqa: E402
import werkzeug  # noqa: E402
from flask.sessions import SecureCookieSessionInterface  # noqa: E402
from markupsafe import Markup  # noqa: E402
from werkzeug.exceptions import default_exceptions  # noqa: E402

import vector_app  # noqa: E402  (patches the clocks)
from pytyped import cps, dumps_like_flask, enc, loads_like_flask  # noqa: E402

app = vector_app.app
rng = random.Random(20261126)


def b64(b):
    return base64.b64encode(b).decode()


# ---------------------------------------------------------------- JSON dumps

def rand_str(n):
    pools = [
        lambda: chr(rng.randrange(0x20, 0x7F)),
        lambda: chr(rng.randrange(0, 0x20)),
        lambda: chr(rng.randrange(0x80, 0x800)),
        lambda: chr(rng.randrange(0x800, 0xD800)),
        lambda: chr(rng.randrange(0xD800, 0xE000)),  # lone surrogates
        lambda: chr(rng.randrange(0xE000, 0x10000)),
        lambda: chr(rng.randrange(0x10000, 0x110000)),
        lambda: rng.choice('"\\/<>&\x7f\u2028\u2029\ufeff'),
    ]
    return "".join(rng.choice(pools)() for _ in range(n))


def rand_float():
    k = rng.randrange(6)
    if k == 0:
        return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if k == 1:
        return rng.uniform(-1e6, 1e6)
    if k == 2:
        return float(rng.randrange(-10**17, 10**17))
    if k == 3:
        return rng.random() * 10 ** rng.randrange(-30, 30)
    if k == 4:
        return round(rng.uniform(-100, 100), rng.randrange(0, 6))
    return rng.choice([0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 1e22, 5e-324, 2.0**53, float("nan"), float("inf"), -float("inf")])


def rand_value(depth=0):
    k = rng.randrange(10 if depth < 4 else 7)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([rng.randrange(-1000, 1000), rng.getrandbits(70) * rng.choice([1, -1]), 2**63, -2**63 - 1])
    if k == 3:
        return rand_float()
    if k in (4, 5, 6):
        return rand_str(rng.randrange(0, 12))
    if k == 7:
        return [rand_value(depth + 1) for _ in range(rng.randrange(0, 5))]
    d = {}
    for _ in range(rng.randrange(0, 5)):
        d[rand_str(rng.randrange(0, 6))] = rand_value(depth + 1)
    return d


def dumps_cases():
    fixed = [
        None, True, False, 0, -1, 2**64, -(2**100), 10**4299,
        1.0, 100.0, 1e16, 1e15, 1e-7, 1e-5, 1e-4, 0.1 + 0.2, -0.0, 1e21, 1e22,
        123456789012345678901234.0, 1 / 3, 1.5, 1.7976931348623157e308, 5e-324, 2.0**53,
        float("nan"), float("inf"), -float("inf"),
        "", "plain", "caf\u00e9 \u4e2d\u6587 \U0001F600 <b>&amp;</b> a/b \"q\" \\ \u2028\u2029 \x7f",
        "".join(chr(c) for c in range(0x20)), "\ud800", "\udfff\ud800", "\ud83d\ude00",
        [], {}, [1, [2, [3, []]]], {"b": 1, "a": 2, "B": 3, "_": 4, "\u00e9": 5, "\U0001F600": 6, "\uffff": 7},
        {"messages": [{"role": "user", "content": "hi"}], "model": "m", "n": 1, "f": 2.0},
        {10: "ten", 2: "two", 1: "one", -5: "neg"},
        {"nested": {"z": {"y": [1.0, {"x": None}]}, "a": []}},
    ]
    vals = fixed + [rand_value() for _ in range(400)]

    def nested(n):
        v = []
        for _ in range(n - 1):
            v = [v]
        return v

    vals += [nested(970), nested(971), {"a": nested(969)}, {"a": nested(970)}, 10**4300, [-(10**4300)]]
    out = []
    for v in vals:
        try:
            flask_bytes = dumps_like_flask(v, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
            default = dumps_like_flask(v)
        except (RecursionError, ValueError) as e:
            out.append({"value": enc(v), "error": type(e).__name__})
            continue
        with app.app_context():
            # jsonify must give exactly the same bytes plus "\n".
            body = app.json.response(v).get_data(as_text=True)
            assert body == flask_bytes + "\n", (v, body)
        out.append({"value": enc(v), "sorted_compact": flask_bytes, "default": default})
    return out


def float_cases():
    fs = [rand_float() for _ in range(3000)]
    fs += [float("1e%d" % e) for e in range(-330, 310)] + [1.0 + 2**-52, 0.1, 0.2, 0.3, 9.999999999999999e15, 1e16 - 2]
    return [[enc(f)[1], repr(f)] for f in fs]


# ---------------------------------------------------------------- JSON loads

def loads_inputs():
    texts = [
        b"", b" ", b"null", b"true", b"false", b"nul", b"True", b"NaN", b"-NaN", b"Infinity", b"-Infinity",
        b"+1", b"01", b"-0", b"-", b"1.", b".5", b"1.5e", b"1e5", b"1E+5", b"1e-5", b"-0.0", b"1e400", b"-1e400",
        b"1e-400", b"123456789012345678901234567890", b"9223372036854775807", b"9223372036854775808",
        b"-9223372036854775808", b"-9223372036854775809", b"1" * 4300, b"1" * 4301, b"1.0" + b"0" * 5000,
        b'"abc"', b'"a\tb"', b'"a\x00b"', b'"\\u00e9"', b'"\\u00E9"', b'"\\ud800"', b'"\\ud83d\\ude00"',
        b'"\\ud83d\\u0041"', b'"\\ud83d\\uzzzz"', b'"\\ud83d\\"', b'"\\udc00\\ud800"', b'"\\x41"', b'"\\/"', b'"\\u12"',
        b'"\\u', b'"abc', b'"\\', b'"\x7f"', b'"\xc3\xa9"', b'"\xff"', b'"\xed\xa0\x80"', b'"\xe2\x82"',
        b'"\xf0\x9f\x98\x80"', b'"\xc0\x80"', b'"\xf4\x90\x80\x80"', b"\xef\xbb\xbf{}", b"\xef\xbb\xbf\xef\xbb\xbf{}",
        b"{}", b"[]", b"[1,]", b"[,1]", b"[1 2]", b'{"a":1,}', b'{"a" 1}', b'{"a":}', b"{'a':1}", b"{a:1}",
        b'{"a":1,"a":2,"b":3,"a":4}', b'{"b":1,"a":2}', b'{"":0}', b"[1,[2,[3,{}]]]", b"{", b"[", b"]", b"}",
        b" \t\n\r[1 , 2 ]\r\n", b"\x0b1", b"1\x0c", b"\xa01", b"1 2", b"[1]x", b'{"a":1}}', b"nullnull",
        b'{"message": "hi \\u00e9"}', b'{"message":"hi","history":[{"role":"user","content":"x"}]}',
        b"[1.0, 2.50, -0.0, 1E2, 1e-7, 100000000000000000000000.0]",
        '{"s":"é😀"}'.encode("utf-16"), '{"s":"é😀"}'.encode("utf-16-le"), '{"s":"é😀"}'.encode("utf-16-be"),
        '{"s":"é😀"}'.encode("utf-32"), '{"s":"é😀"}'.encode("utf-32-le"), '{"s":"é😀"}'.encode("utf-32-be"),
        b"1\x00", b"\x001", b"\x00\x00\x00", '"x"'.encode("utf-16-le")[:-1], b"\xff\xfe\x00\xd8",
        b"[" * 50 + b"]" * 50, b"[" * 971 + b"]" * 971, b"[" * 972 + b"]" * 972, b'{"a":' * 971 + b"1" + b"}" * 971,
        b'{"a":' * 972 + b"1" + b"}" * 972, b'{"a":' * 40 + b"1" + b"}" * 40,
        b"[1e309, -1e309, 1.7976931348623157e308, 4.9e-324, 2.5e-324, 0.1e1, 0e0, 0E-0]",
        b"[-]", b"[--1]", b"[1e]", b"[1e+]", b"[1.e5]", b"[1.5.5]", b"[0x10]", b"[Infinityx]", b"[-Infinity1]",
        b"[truex]", b"[nan]", b"[inf]",
    ]
    # Mutations of valid documents (fixed seed).
    base = [
        b'{"message": "hi \\u00e9", "n": [1, 2.5, -3e2, true, null], "o": {"k": "v"}}',
        b'[{"role":"user","content":"a\\nb"},{"x":1.0}]',
    ]
    alphabet = b'{}[],:"\\ \t\n\r0123456789.eE+-truefalsnNaIiy\xc3\xa9\xff\x00u'
    for _ in range(400):
        b = bytearray(rng.choice(base))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(b) + 1)
            if op == 0 and len(b) > 0:
                del b[min(i, len(b) - 1)]
            elif op == 1:
                b.insert(i, rng.choice(alphabet))
            elif len(b) > 0:
                b[min(i, len(b) - 1)] = rng.choice(alphabet)
        texts.append(bytes(b))
    return texts


def loads_cases():
    out = []
    for t in loads_inputs():
        case = {"input": b64(t)}
        try:
            v = loads_like_flask(t)
        except RecursionError as e:
            case.update(ok=False, error="RecursionError", message=str(e))
        except ValueError as e:
            case.update(ok=False, error=type(e).__name__, message=str(e))
        else:
            try:
                default = dumps_like_flask(v)
            except RecursionError:
                default = None
            case.update(ok=True, value=enc(v), default=default)
        out.append(case)
    return out


# ---------------------------------------------------------------- error pages

def error_page_cases():
    out = []
    for code in sorted(default_exceptions):
        e = default_exceptions[code]()
        if code == 405:
            e = default_exceptions[code](valid_methods=["GET", "POST"])
        resp = e.get_response()
        out.append({
            "code": code,
            "name": e.name,
            "description": e.description,
            "status": resp.status,
            "headers": [[k, v] for k, v in resp.headers.items()],
            "body": resp.get_data(as_text=True),
        })
    for code, desc in [(400, "Missing 'message' <field>\n& \"more\""), (404, ""), (503, "Try later.\nThanks")]:
        e = default_exceptions[code](description=desc)
        resp = e.get_response()
        out.append({"code": code, "name": e.name, "description": desc, "status": resp.status,
                    "headers": [[k, v] for k, v in resp.headers.items()], "body": resp.get_data(as_text=True)})
    return out


def status_line_cases():
    from werkzeug.wrappers import Response
    return [[c, Response(status=c).status] for c in list(range(100, 600))]


# ---------------------------------------------------------------- sessions

def serializer(secret="test-secret", fallbacks=None):
    a = flask.Flask("x")
    a.config.update(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=fallbacks or [])
    return a, SecureCookieSessionInterface().get_signing_serializer(a)


def with_ts(ts, fn):
    old = itsdangerous.timed.TimestampSigner.get_timestamp
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: ts
    try:
        return fn()
    finally:
        itsdangerous.timed.TimestampSigner.get_timestamp = old


def session_cases():
    a, s = serializer()
    values = [
        {"conversation_id": "abc"},
        {"_permanent": True, "conversation_id": "abc"},
        {"conversation_id": "h\u00e9llo \U0001F600", "n": 1.0, "i": 2**70},
        {"history": [{"role": "user", "content": "message number %d" % i} for i in range(30)]},
        {"t": (1, 2), "b": b"\x00\x01bytes\xff", "m": Markup("<b>x</b>"),
         "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
         "d": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)},
        {"k": {" t": [1, 2]}, "k2": {" di": "x"}, "k3": {" t": 1, "other": 2}, "k4": [(1, (2, 3))]},
        {"z": 1, "a": 2, "M": [None, False, -0.0, 1e-7]},
        {"x": "y" * 3},
        {"lone": "\ud800"},
    ]
    encode = []
    for i, v in enumerate(values):
        for ts in (CLOCK, 1795724682, 255, 1):
            with a.app_context():
                cookie = with_ts(ts, lambda: s.dumps(v))
            encode.append({"value": enc(v), "ts": ts, "cookie": cookie})

    def outcome(cookie, now, ser=s, app_=a):
        def run():
            with app_.app_context():
                return ser.loads(cookie, max_age=31 * 24 * 3600)
        try:
            v = with_ts(now, run)
        except itsdangerous.SignatureExpired:
            return {"ok": False, "error": "SignatureExpired"}
        except itsdangerous.BadPayload:
            return {"ok": False, "error": "BadPayload"}
        except itsdangerous.BadSignature:
            return {"ok": False, "error": "BadSignature"}
        except Exception as e:  # noqa: BLE001 - Flask would answer 500
            return {"ok": False, "error": "Exception:" + type(e).__name__}
        try:
            v = dict(flask.sessions.SecureCookieSession(v))
        except Exception as e:  # noqa: BLE001 - open_session fails: Flask answers 500
            return {"ok": False, "error": "Exception:" + type(e).__name__}
        return {"ok": True, "value": enc(v)}

    decode = []

    def add(name, cookie, now=CLOCK, secret="test-secret", fallbacks=None):
        app_, ser = serializer(secret, fallbacks)
        r = outcome(cookie, now, ser, app_)
        r.update(name=name, cookie=cookie, now=now, secret=secret, fallbacks=fallbacks or [])
        decode.append(r)

    with a.app_context():
        good = with_ts(CLOCK, lambda: s.dumps({"conversation_id": "abc"}))
        comp = with_ts(CLOCK, lambda: s.dumps(values[3]))
        rich = with_ts(CLOCK, lambda: s.dumps(values[4]))
    for e in encode:
        add("roundtrip ts=%d" % e["ts"], e["cookie"], now=max(e["ts"], CLOCK) if e["ts"] <= CLOCK else e["ts"])
    add("good", good)
    add("compressed", comp)
    add("rich", rich)
    p, ts, sig = good.rsplit(".", 2)
    add("tampered sig", good[:-1] + ("A" if good[-1] != "A" else "B"))
    add("tampered payload", "X" + good[1:])
    add("tampered ts", p + "." + "awiVig" + "." + sig)
    add("wrong key", good, secret="other")
    add("fallback key", good, secret="new-secret", fallbacks=["older", "test-secret"])
    add("expired by 1s", good, now=CLOCK + 31 * 24 * 3600 + 1)
    add("age == max_age", good, now=CLOCK + 31 * 24 * 3600)
    add("future by 1s", good, now=CLOCK - 1)
    add("no dot", "abcdef")
    add("one dot", "abc.def")
    add("empty", "")
    add("dots only", "..")
    add("junk in sig", p + "." + ts + "." + sig[:5] + "!*" + sig[5:])
    add("non-ascii in sig", p + "." + ts + "." + sig[:5] + "\u00e9" + sig[5:])
    add("plus/slash in sig", p + "." + ts + "." + sig.replace("-", "+").replace("_", "/"))
    add("sig with padding", good + "=")
    add("sig with 1 extra char", good + "A")

    def signed(payload_bytes, ts=CLOCK, compressed=False):
        signer = s.make_signer()
        body = base64.urlsafe_b64encode(payload_bytes).rstrip(b"=")
        if compressed:
            body = b"." + body
        return with_ts(ts, lambda: signer.sign(body)).decode()

    add("signed non-dict", signed(b"[1,2]"))
    add("signed bad json", signed(b"{nope"))
    add("signed bad utf8", signed(b'{"a":"\xff"}'))
    add("signed surrogate utf8", signed(b'{"a":"\xed\xa0\x80"}'))
    add("signed bad zlib", signed(b"not zlib", compressed=True))
    add("signed zlib + trailing", signed(zlib.compress(b'{"a":1}') + b"junk", compressed=True))
    add("signed truncated zlib", signed(zlib.compress(b'{"a":1}' * 20)[:-3], compressed=True))
    add("signed bad tag bytes", signed(b'{"a":{" b":"!!!"}}'))
    add("signed bad tag uuid", signed(b'{"a":{" u":"xyz"}}'))
    add("signed uuid forms", signed(b'{"a":{" u":"{12345678-1234-5678-1234-567812345678}"},"b":{" u":"urn:uuid:12345678123456781234567812345678"}}'))
    add("signed bad tag date", signed(b'{"a":{" d":"not a date"}}'))
    add("signed tag di", signed(b'{"a":{" di":{" t__":[1]}}}'))
    add("signed nested tags", signed(b'{"a":[{" t":[{" b":"AAE="}]}]}'))
    add("signed NaN", signed(b'{"a":NaN,"b":1e400}'))
    add("signed dup keys", signed(b'{"a":1,"b":2,"a":3}'))
    add("signed empty ts", p + "." + "" + "." + base64.urlsafe_b64encode(
        __import__("hmac").new(s.make_signer().derive_key(), (p + ".").encode(), "sha1").digest()).rstrip(b"=").decode())
    add("signed 9-byte ts", (lambda v: v + "." + base64.urlsafe_b64encode(
        __import__("hmac").new(s.make_signer().derive_key(), v.encode(), "sha1").digest()).rstrip(b"=").decode())(
        p + "." + base64.urlsafe_b64encode(b"\x01" * 9).rstrip(b"=").decode()))
    return {"clock": CLOCK, "max_age": 31 * 24 * 3600, "encode": encode, "decode": decode}


def save_session_cases():
    """SecureCookieSessionInterface.save_session over config x session state x existing Vary."""
    configs = [
        {},
        {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_SAMESITE": "lax"},
        {"SESSION_COOKIE_DOMAIN": ".Example.com:8080", "SESSION_COOKIE_PATH": "/app", "SESSION_COOKIE_HTTPONLY": False},
        {"SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_SAMESITE": "None"},
        {"SESSION_REFRESH_EACH_REQUEST": False},
        {"PERMANENT_SESSION_LIFETIME": 3600},
    ]
    states = [
        ({}, False, False), ({}, True, False), ({}, True, True), ({}, False, True),
        ({"a": 1}, False, False), ({"a": 1}, True, False), ({"a": 1}, True, True),
        ({"_permanent": True, "a": 1}, True, False), ({"_permanent": True, "a": 1}, False, False),
        ({"_permanent": True, "a": 1}, True, True), ({"_permanent": 0, "a": 1}, True, False),
    ]
    out = []
    iface = SecureCookieSessionInterface()
    for cfg in configs:
        a = flask.Flask("save")
        a.config.update(SECRET_KEY="test-secret", **cfg)
        for data, accessed, modified in states:
            for vary in (None, "Accept-Encoding", "cookie"):
                with a.test_request_context():
                    sess = flask.sessions.SecureCookieSession(data)
                    sess.accessed, sess.modified = accessed, modified
                    resp = a.response_class("x")
                    if vary is not None:
                        resp.headers["Vary"] = vary
                    iface.save_session(a, sess, resp)
                out.append({
                    "config": {k: (v if not isinstance(v, bool) else v) for k, v in cfg.items()},
                    "data": enc(data), "accessed": accessed, "modified": modified, "vary_in": vary,
                    "set_cookie": resp.headers.getlist("Set-Cookie"), "vary": resp.headers.getlist("Vary"),
                })
    return out


# ---------------------------------------------------------------- HTTP via gunicorn

def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def raw_request(method, target, headers=(), body=b"", host="localhost", chunked=False):
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    if host is not None:
        lines.append(b"Host: " + host.encode("latin-1"))
    for k, v in headers:
        lines.append(k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        payload = b""
        for i in range(0, len(body), 7):
            part = body[i:i + 7]
            payload += b"%x\r\n" % len(part) + part + b"\r\n"
        payload += b"0\r\n\r\n"
        body = payload
    elif body or method in ("POST", "PUT"):
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as so:
        so.sendall(raw)
        data = b""
        while True:
            chunk = so.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.decode("latin-1").partition(":")
        if k.lower() == "date":
            continue  # varies per run; servers add it, the app does not
        headers.append([k, v.strip()])
    return {"status": status, "status_line": lines[0].decode("latin-1"), "headers": headers, "body": b64(body)}


def http_cases():
    cases = []

    def add(name, raw):
        cases.append({"name": name, "request": raw})

    R = raw_request
    paths = [
        "/health", "/health/", "//health", "/health?x=1", "/chat", "/chat/", "/chat?x=1&y=%C3%A9", "/chat?a=%zz&b",
        "/api/conversations", "/api/conversations/", "/api//conversations", "/api/conversations/c1",
        "/api/conversations/c1/", "/api/conversations/%E2%82%AC%20x", "/api/conversations/%FF%FEa",
        "/api/conversations/a%2Fb", "/api/conversations/%e2%82", "/api/items/42", "/api/items/007", "/api/items/-1",
        "/api/items/%D9%A3", "/api/items/99999999999999999999999", "/api/items/x", "/api/signed/-5", "/api/signed/5",
        "/api/fixed/007", "/api/fixed/7", "/api/fixed/0007", "/api/range/1", "/api/range/10", "/api/range/11",
        "/api/range/0", "/api/floats/1.5", "/api/floats/1", "/api/floats/10.000", "/files/a", "/files/a/b/c.txt",
        "/files/a/b/", "/files//a", "/files/a/edit", "/files/a/b/edit", "/dirs/x", "/dirs/x/", "/dirs/x/y/",
        "/dirs/x//", "/u/12345678-1234-5678-1234-567812345678", "/u/ABCDEF01-ABCD-ABCD-ABCD-ABCDEF012345",
        "/u/12345678123456781234567812345678", "/lang/en", "/lang/eng", "/lang/e", "/lang/abc/x", "/lang/abcdef/x",
        "/lang/ab/x", "/any/a", "/any/c%20d", "/any/z", "/post-only", "/items/static", "/items/other", "/items/12",
        "/a/c/b", "/a/z/b", "/a/c/q", "/nonstrict", "/nonstrict/", "/nonstrict2", "/nonstrict2/", "/multi/x/1/p/q",
        "/multi/x/y/p", "/opts", "/static/app.js", "/static/", "/static", "/nope", "/", "/%7Ehealth", "/heal%74h",
    ]
    for p in paths:
        for m in ("GET", "HEAD", "POST", "OPTIONS", "DELETE", "PUT", "PATCH"):
            add(f"{m} {p}", R(m, p))
    add("redirect Host with port 80", R("GET", "/chat", host="Example.COM:80"))
    add("redirect Host with port 8080", R("GET", "/chat?q=1", host="example.com:8080"))
    add("redirect Host invalid", R("GET", "/chat", host="exa mple.com"))
    add("redirect Host ipv6", R("GET", "/chat", host="[::1]:5000"))
    add("redirect X-Forwarded-Proto https", R("GET", "/chat", [("X-Forwarded-Proto", "https")]))
    add("redirect X-Forwarded-Proto https port 443", R("GET", "/chat", [("X-Forwarded-Proto", "https")], host="h:443"))
    add("redirect X-Forwarded-Proto http", R("GET", "/chat", [("X-Forwarded-Proto", "http")]))
    add("redirect X-Forwarded-Ssl on", R("GET", "/chat", [("X-Forwarded-Ssl", "on")]))
    add("redirect X-Forwarded-Protocol ssl", R("GET", "/chat", [("X-Forwarded-Protocol", "ssl")]))
    add("redirect merged slashes with query", R("GET", "//api//conversations//c1?x=%20y"))
    add("redirect non-ascii", R("GET", "/dirs/%C3%A9t%C3%A9"))

    # request.get_json()
    J = [("Content-Type", "application/json")]
    bodies = [
        b'{"message": "hi \\u00e9"}', b"{}", b"[]", b"null", b"1", b"1.0", b"NaN", b'"s"', b"", b" ", b"{", b"[1,]",
        b'{"a":1,"a":2}', b'{"big":123456789012345678901234567890,"f":1e400,"n":-0.0,"e":1E2}',
        b'{"s":"\\ud800","t":"\\ud83d\\ude00","u":"<&>\\u2028"}', b'{"x":"\xff"}', b'{"x":"\xed\xa0\x80"}',
        b"\xef\xbb\xbf{\"bom\":1}", '{"u16":"é"}'.encode("utf-16"), '{"u32":"é"}'.encode("utf-32-le"),
        b"[" * 100 + b"]" * 100, b"[" * 400 + b"]" * 400, b"1" * 4301, b"\t\n\r {\"ws\": true} \n",
    ]
    for i, b in enumerate(bodies):
        add(f"get_json body {i}", R("POST", "/json", J, b))
        add(f"get_json dumps body {i}", R("POST", "/json-dumps", J, b))
    for ct in ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", " application/json ",
               "application/vnd.api+json", "application/+json", "application/json-patch+json", "text/json",
               "text/plain", "application/jsonx", "application", "", "application/json;", ";application/json",
               "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]:
        add(f"get_json content-type {ct!r}", R("POST", "/json", [("Content-Type", ct)], b'{"ok":1}'))
    add("get_json no content-type", R("POST", "/json", [], b'{"ok":1}'))
    add("get_json two content-types", R("POST", "/json", [("Content-Type", "text/plain"), ("Content-Type", "application/json")], b'{"ok":1}'))
    big = b'{"a":"' + b"y" * 1016 + b'"}'
    assert len(big) == 1024
    add("get_json 1024 bytes", R("POST", "/json", J, big))
    add("get_json 1025 bytes", R("POST", "/json", J, big[:-2] + b'y"}'))
    add("get_json 1025 bytes text/plain", R("POST", "/json", [("Content-Type", "text/plain")], big[:-2] + b'y"}'))
    add("get_json chunked small", R("POST", "/json", J, b'{"chunked": [1, 2, 3]}', chunked=True))
    add("get_json chunked 1024", R("POST", "/json", J, big, chunked=True))
    add("get_json chunked 1100", R("POST", "/json", J, b'{"a":"' + b"y" * 1093 + b'"}', chunked=True))
    add("get_json chunked empty", R("POST", "/json", J, b"", chunked=True))
    add("get_json HEAD", R("HEAD", "/json", J, b"{}"))

    # error pages
    for code in [400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422,
                 423, 424, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505]:
        add(f"abort {code}", R("GET", f"/abort/{code}"))
        add(f"HEAD abort {code}", R("HEAD", f"/abort/{code}"))
    for code in (200, 201, 204, 299, 304, 404, 418, 503):
        add(f"jsonify with status {code}", R("GET", f"/status/{code}"))
        add(f"HEAD jsonify with status {code}", R("HEAD", f"/status/{code}"))
    add("abort with description", R("GET", "/abort-desc"))
    add("MethodNotAllowed raised", R("GET", "/abort405"))
    add("exception", R("GET", "/error"))
    return cases


def session_http_cases(port):
    out = []

    def go(name, path, cookie=None, method="GET"):
        hdrs = [("Cookie", "session=" + cookie)] if cookie is not None else []
        raw = raw_request(method, path, hdrs)
        resp = send(port, raw)
        out.append({"name": name, "request": b64(raw), "response": resp})
        return resp

    def set_cookie_value(resp):
        for k, v in resp["headers"]:
            if k.lower() == "set-cookie" and v.startswith("session=") and "Max-Age=0" not in v:
                return v.split(";", 1)[0][len("session="):]
        return None

    r = go("set", "/s/set")
    plain = set_cookie_value(r)
    r = go("permanent", "/s/permanent")
    perm = set_cookie_value(r)
    r = go("rich", "/s/rich")
    rich = set_cookie_value(r)
    r = go("big", "/s/big")
    big = set_cookie_value(r)
    a, s = serializer()
    with a.app_context():
        expired = with_ts(CLOCK - 31 * 24 * 3600 - 1, lambda: s.dumps({"conversation_id": "old"}))
        future = with_ts(CLOCK + 10, lambda: s.dumps({"conversation_id": "new"}))
        empty = with_ts(CLOCK, lambda: s.dumps({}))
    cookies = {"none": None, "plain": plain, "perm": perm, "rich": rich, "big": big,
               "tampered": plain[:-1] + ("A" if plain[-1] != "A" else "B"), "expired": expired,
               "future": future, "empty-session": empty, "garbage": "garbage", "blank": ""}
    def go_headers(name, path, headers):
        raw = raw_request("GET", path, headers)
        out.append({"name": name, "request": b64(raw), "response": send(port, raw)})

    go_headers("cookie after another", "/s/read", [("Cookie", "a=1; session=" + plain)])
    go_headers("cookie quoted", "/s/read", [("Cookie", 'session="' + plain + '"')])
    go_headers("cookie quoted with escapes", "/s/read", [("Cookie", 'session="' + plain[:10] + "\\" + plain[10:15] + "\\" + "141" + plain[15:] + '"')])
    go_headers("cookie first wins", "/s/read", [("Cookie", "session=" + plain + "; session=garbage")])
    go_headers("cookie first wins (garbage first)", "/s/read", [("Cookie", "session=garbage; session=" + plain)])
    go_headers("cookie two headers", "/s/read", [("Cookie", "a=1"), ("Cookie", "session=" + plain)])
    go_headers("cookie two headers session first", "/s/read", [("Cookie", "session=" + plain), ("Cookie", "a=1")])
    go_headers("cookie spaces", "/s/read", [("Cookie", "  session =  " + plain + "  ;  b=2")])
    go_headers("cookie no value", "/s/read", [("Cookie", "session; x=1")])
    go_headers("cookie junk in sig", "/s/read", [("Cookie", "session=" + plain[:-3] + "!" + plain[-3:])])
    for path in ["/s/read", "/s/nontouch", "/s/set", "/s/permanent", "/s/unpermanent", "/s/clear", "/s/pop",
                 "/s/pop-present", "/s/rich"]:
        for cname, c in cookies.items():
            go(f"{path} cookie={cname}", path, c)
    return out


def start_gunicorn():
    port = free_port()
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(HERE))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"  # fixes the (set-ordered) Allow headers, so reruns give the same file
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(root, ".pydeps"), HERE, env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--chdir", HERE, "vector_app:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("gunicorn did not start")


def main():
    import gunicorn

    sys.setrecursionlimit(20000)  # for enc() of deep values; at_flask_depth restores 1000 around json calls

    proc, port = start_gunicorn()
    try:
        http = []
        for c in http_cases():
            http.append({"name": c["name"], "request": b64(c["request"]), "response": send(port, c["request"])})
        sess_http = session_http_cases(port)
    finally:
        proc.terminate()
        proc.wait(10)
    out = {
        "versions": {"flask": flask.__version__ if hasattr(flask, "__version__") else "",
                     "werkzeug": getattr(werkzeug, "__version__", ""),
                     "itsdangerous": getattr(itsdangerous, "__version__", ""),
                     "gunicorn": gunicorn.__version__, "python": sys.version.split()[0],
                     "zlib": zlib.ZLIB_RUNTIME_VERSION},
        "dumps": dumps_cases(),
        "floats": float_cases(),
        "loads": loads_cases(),
        "error_pages": error_page_cases(),
        "status_lines": status_line_cases(),
        "session": session_cases(),
        "save_session": save_session_cases(),
        "http": http,
        "session_http": sess_http,
    }
    path = os.path.join(HERE, "vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}: {len(out['dumps'])} dumps, {len(out['floats'])} floats, {len(out['loads'])} loads, "
          f"{len(out['error_pages'])} error pages, {len(out['session']['encode'])}+{len(out['session']['decode'])} "
          f"session, {len(http)} http, {len(sess_http)} session http")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    main()
