#!/usr/bin/env python3
"""Writes corpus.json, the requests the conformance suite sends to the legacy app
and to the native handlers (handlers/conformance_test.go; the proxy-based
variant reuses it).

Run from this folder: python3 gen_corpus.py > corpus.json
                      python3 gen_corpus.py slow > slow.json
slow.json holds the cases served with a stub that paces its tokens slower
than the backends' Bedrock read timeout.

Each case is one HTTP request plus the state it starts from:
  name        unique, "area/what"
  method      request method
  target      raw request-target (path and query, sent as is)
  headers     [[name, value], ...] in order; Host is added by the runner
  body        request body as text (sent UTF-8 encoded), or
  body_hex    request body as raw bytes (hex), or
  body_parts  [[text, count], ...]: text repeated count times, concatenated
  encoding    "utf-16-le" etc.: body text encoded with this codec instead of UTF-8
  chunked     send the body with Transfer-Encoding: chunked
  headers may hold {cookie:KIND}, replaced by a cookie of that kind
  cookie      session cookie to send: "valid", "tampered", "expired",
              "foreign" (another key), "garbage", "empty-session",
              "int-id" (conversation_id 7), "large-no-id" (a session big
              enough to be zlib-compressed, without conversation_id);
              signed at the suite's clock
  session_id  conversation_id inside a valid/tampered/expired cookie
  cookie_value a session cookie made here by Flask itself (for values only
              Python produces: tuples, UUIDs, datetimes, bytes...), signed
              with the suite's SECRET_KEY at its clock; the runner fails the
              case if it does not verify
  redis       commands run on a flushed Redis before the request
  redis_down  serve the case with a Redis that is not running
The runner flushes Redis and runs the setup before each backend's request, and
compares status, headers (Allow as a set; Date, Connection, Transfer-Encoding,
Keep-Alive ignored), body bytes, the Redis state afterwards and the bodies the
backends sent to Bedrock.
"""

import json
import math
import sys
import uuid
from datetime import datetime, timezone

import itsdangerous.timed
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

CREATED = "2026-11-26T20:00:00+00:00"


def turn(role, content, created=CREATED):
    # exactly what the legacy save_turns stores
    return json.dumps({"role": role, "content": content, "created_at": created})


SEEDED = [
    ["RPUSH", "conversation:seeded",
     turn("user", "Quelle heure est-il? \u23f0"),
     turn("assistant", "Il est <b>midi</b> & \"demi\" \U0001F600\nbien s\u00fbr.")],
]
SEEDED_LONG = [["RPUSH", "conversation:long"] + [
    turn("user" if i % 2 == 0 else "assistant", f"turn {i} \u00e9\u00e8") for i in range(30)]]

JSON = [["Content-Type", "application/json"]]

# The suite's SECRET_KEY (testenv.LegacySecretKey) and clock (int() of
# handlers/conformance_test.go's conformanceClock, as itsdangerous uses it).
SUITE_SECRET_KEY = "cutover-testenv-secret"
SUITE_CLOCK = 1795726800


def flask_cookie(data):
    """The session cookie Flask itself sets for data, at the suite's clock."""
    app = Flask("corpus")
    app.config["SECRET_KEY"] = SUITE_SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    saved = itsdangerous.timed.TimestampSigner.get_timestamp
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: SUITE_CLOCK
    try:
        with app.app_context():
            return serializer.dumps(data)
    finally:
        itsdangerous.timed.TimestampSigner.get_timestamp = saved
cases = []


def add(name, method, target, headers=None, **kw):
    c = {"name": name, "method": method, "target": target, "headers": headers if headers is not None else []}
    c.update(kw)
    cases.append(c)


def chat(name, body, path="/chat", headers=None, **kw):
    add(name, "POST", path, JSON if headers is None else headers, body=body, **kw)


# --- simple GET endpoints --------------------------------------------------
add("health/get", "GET", "/health")
add("health/query", "GET", "/health?x=1&y=%C3%A9")
add("health/head", "HEAD", "/health")
add("health/options", "OPTIONS", "/health")
add("health/post", "POST", "/health", JSON, body="{}")
add("health/trailing-slash", "GET", "/health/")
add("health/double-slash", "GET", "//health")
add("health/cookie-ignored", "GET", "/health", cookie="valid", session_id="seeded")
add("health/tampered-cookie-ignored", "GET", "/health", cookie="tampered", session_id="seeded")
add("models/get", "GET", "/models")
add("models/head", "HEAD", "/models")
add("models/delete", "DELETE", "/models")
add("models/trailing-slash", "GET", "/models/")

# --- unknown paths and methods ---------------------------------------------
add("unknown/path", "GET", "/nope")
add("unknown/head", "HEAD", "/nope")
add("unknown/options", "OPTIONS", "/nope")
add("unknown/root", "GET", "/")
add("unknown/static", "GET", "/static/app.js")
add("unknown/static-options", "OPTIONS", "/static/app.js")
add("unknown/method-brew", "BREW", "/health")
add("unknown/put-chat", "PUT", "/chat", JSON, body="{}")
add("unknown/get-chat", "GET", "/chat")
add("unknown/head-chat", "HEAD", "/chat")
add("unknown/delete-chat-stream", "DELETE", "/chat/stream")
add("unknown/patch-conversation", "PATCH", "/conversations/seeded", JSON, body="{}")
add("unknown/post-conversation", "POST", "/conversations/seeded", JSON, body="{}")
add("unknown/chat-trailing-slash", "POST", "/chat/", JSON, body='{"message": "hi"}')
add("unknown/chat-stream-trailing-slash", "POST", "/chat/stream/", JSON, body='{"message": "hi"}')
add("unknown/conversations-root", "GET", "/conversations")
add("unknown/conversations-slash", "GET", "/conversations/")
add("unknown/conversation-trailing-slash", "GET", "/conversations/seeded/", redis=SEEDED)
add("unknown/conversation-subpath", "GET", "/conversations/a/b")
add("unknown/options-chat", "OPTIONS", "/chat")
add("unknown/options-chat-stream", "OPTIONS", "/chat/stream")
add("unknown/options-conversation", "OPTIONS", "/conversations/x")

add("unknown/double-slash-conversation", "GET", "/conversations//seeded", redis=SEEDED)
add("unknown/double-slash-stream", "POST", "/chat//stream", JSON, body='{"message": "hi"}')
add("unknown/dot-segment", "GET", "/./health")
add("unknown/trailing-dot", "GET", "/health/.")
add("unknown/percent-encoded-letter", "GET", "/%68ealth")
add("unknown/upper-case-path", "GET", "/HEALTH")
add("unknown/absolute-form", "GET", "http://cutover.test/health")
add("unknown/bad-percent-query", "GET", "/health?q=%zz&r=%")
add("unknown/options-asterisk", "OPTIONS", "*")
# gunicorn drops a "#fragment" from the request-target (urlsplit), net/http keeps it.
add("health/fragment", "GET", "/health#x")
add("health/query-then-fragment", "GET", "/health?x=1#y?z")
add("unknown/fragment-only-path", "GET", "/#health")
add("conversation/get-fragment", "GET", "/conversations/seeded#frag", redis=SEEDED)
add("unknown/fragment-redirect", "GET", "/conversations//seeded?x=1#frag", redis=SEEDED)
add("unknown/forwarded-proto-redirect", "GET", "/conversations//seeded", [["X-Forwarded-Proto", "https"]], redis=SEEDED)

# --- conversations ---------------------------------------------------------
add("conversation/get", "GET", "/conversations/seeded", redis=SEEDED)
add("conversation/head", "HEAD", "/conversations/seeded", redis=SEEDED)
add("conversation/get-long", "GET", "/conversations/long", redis=SEEDED_LONG)
add("conversation/get-missing", "GET", "/conversations/missing")
add("conversation/get-uuid-like", "GET", "/conversations/3b036056-8f37-423d-bbde-78b9476368d8")
add("conversation/get-percent-space", "GET", "/conversations/a%20b", redis=[["RPUSH", "conversation:a b", turn("user", "spaced")]])
add("conversation/get-percent-utf8", "GET", "/conversations/%E2%9C%A8", redis=[["RPUSH", "conversation:\u2728", turn("user", "sparkle")]])
add("conversation/get-percent-invalid-utf8", "GET", "/conversations/%FF")
add("conversation/get-encoded-slash", "GET", "/conversations/a%2Fb")
add("conversation/get-query", "GET", "/conversations/seeded?full=1", redis=SEEDED)
add("conversation/get-not-a-list", "GET", "/conversations/str", redis=[["SET", "conversation:str", "x"]])
add("conversation/get-corrupt-item", "GET", "/conversations/bad", redis=[["RPUSH", "conversation:bad", "{not json"]])
add("conversation/get-missing-created-at", "GET", "/conversations/old", redis=[["RPUSH", "conversation:old", json.dumps({"role": "user", "content": "x"})]])
add("conversation/get-extra-fields", "GET", "/conversations/extra", redis=[["RPUSH", "conversation:extra", json.dumps({"content": [1, 2.5, None], "role": {"n": True}, "created_at": 5, "x": 1})]])
add("conversation/delete", "DELETE", "/conversations/seeded", redis=SEEDED)
add("conversation/delete-missing", "DELETE", "/conversations/missing")
add("conversation/delete-with-body", "DELETE", "/conversations/seeded", JSON, body='{"x": 1}', redis=SEEDED)
add("conversation/get-with-session", "GET", "/conversations/seeded", cookie="valid", session_id="seeded", redis=SEEDED)

# --- chat: valid requests --------------------------------------------------
chat("chat/basic", '{"message": "Hello there"}')
chat("chat/non-ascii", '{"message": "Gr\u00fc\u00df Gott, \u4f60\u597d, \u0645\u0631\u062d\u0628\u0627, \u0928\u092e\u0938\u094d\u0924\u0947"}')
chat("chat/emoji", '{"message": "\U0001F600\U0001F680 family: \U0001F468\u200d\U0001F469\u200d\U0001F467 flag: \U0001F1EB\U0001F1F7"}')
chat("chat/escaped-emoji", '{"message": "\\ud83d\\ude00 via escapes \\u00e9"}')
chat("chat/html", '{"message": "<script>alert(\\"x\\")</script> &amp; <b>bold</b> \\u2028\\u2029 \\u007f"}')
chat("chat/control-chars", '{"message": "tab\\there\\nnewline\\r\\u0000nul\\u001b"}')
chat("chat/lone-surrogate", '{"message": "lone \\ud800 and \\udfff", "conversation_id": "lone"}')
chat("chat/long-text", None, body_parts=[['{"message": "', 1], ["\u00e9\U0001F600ab", 1000], ['"}', 1]])
chat("chat/max-length-exact", None, body_parts=[['{"message": "', 1], ["x", 4000], ['"}', 1]])
chat("chat/with-conversation", '{"message": "And tomorrow?", "conversation_id": "seeded"}', redis=SEEDED)
chat("chat/with-long-history", '{"message": "Summarize", "conversation_id": "long"}', redis=SEEDED_LONG)
chat("chat/all-fields", '{"message": "hi", "conversation_id": "c-1_x", "model": "anthropic.claude-3-haiku-20240307-v1:0", "temperature": 0.3, "max_tokens": 4096}')
chat("chat/opus", '{"message": "hi", "model": "anthropic.claude-3-opus-20240229-v1:0", "max_tokens": 2048}')
chat("chat/max-tokens-cut", '{"message": "write a lot", "max_tokens": 3}')
chat("chat/temperature-int-one", '{"message": "hi", "temperature": 1}')
chat("chat/temperature-int-zero", '{"message": "hi", "temperature": 0}')
chat("chat/temperature-negative-zero", '{"message": "hi", "temperature": -0.0}')
chat("chat/temperature-exponent", '{"message": "hi", "temperature": 5e-1}')
chat("chat/temperature-long-fraction", '{"message": "hi", "temperature": 0.10000000000000000001}')
chat("chat/temperature-tiny", '{"message": "hi", "temperature": 1e-7}')
chat("chat/nulls-are-absent", '{"message": "hi", "conversation_id": null, "model": null, "temperature": null, "max_tokens": null}')
chat("chat/unknown-fields", '{"message": "hi", "stream": true, "extra": {"a": [1, 2]}}')
chat("chat/duplicate-keys", '{"message": 1, "message": "second wins"}')
chat("chat/whitespace-around", ' \n\t{"message": "hi"}\r\n ')
chat("chat/bom", '\ufeff{"message": "with BOM"}')
chat("chat/utf16", '{"message": "utf-16 \u00e9\U0001F600"}', encoding="utf-16-le")
chat("chat/utf16-bom", '{"message": "utf-16 with bom"}', encoding="utf-16")
chat("chat/charset-param", '{"message": "hi"}', headers=[["Content-Type", "application/json; charset=utf-8"]])
chat("chat/upper-content-type", '{"message": "hi"}', headers=[["Content-Type", "APPLICATION/JSON"]])
chat("chat/plus-json", '{"message": "hi"}', headers=[["Content-Type", "application/vnd.api+json"]])
chat("chat/chunked", '{"message": "sent in chunks"}', chunked=True)
chat("chat/query-string", '{"message": "hi"}', path="/chat?debug=1")
chat("chat/conversation-64", '{"message": "hi", "conversation_id": "' + "A" * 64 + '"}')

# --- chat: sessions --------------------------------------------------------
for kind in ["valid", "tampered", "expired", "foreign", "garbage", "empty-session", "int-id", "large-no-id"]:
    chat(f"session/chat-{kind}", '{"message": "session ' + kind + '"}', cookie=kind, session_id="seeded", redis=SEEDED)
chat("session/chat-valid-explicit-id", '{"message": "explicit", "conversation_id": "other"}', cookie="valid", session_id="seeded", redis=SEEDED)
chat("session/stream-valid", '{"message": "stream with session"}', path="/chat/stream", cookie="valid", session_id="seeded", redis=SEEDED)
chat("session/stream-absent", '{"message": "stream new session"}', path="/chat/stream")
chat("session/two-session-cookies", '{"message": "two cookies"}', headers=JSON + [["Cookie", "session=garbage; session={cookie:valid}"]], session_id="seeded", redis=SEEDED)
chat("session/valid-then-garbage", '{"message": "two cookies"}', headers=JSON + [["Cookie", "session={cookie:valid}; session=garbage"]], session_id="seeded", redis=SEEDED)
chat("session/quoted-cookie", '{"message": "quoted"}', headers=JSON + [["Cookie", 'session="{cookie:valid}"']], session_id="seeded", redis=SEEDED)
chat("session/other-cookies", '{"message": "others"}', headers=JSON + [["Cookie", "a=1; session={cookie:valid}; b=2"]], session_id="seeded", redis=SEEDED)
chat("session/empty-cookie-value", '{"message": "empty"}', headers=JSON + [["Cookie", "session="]])
chat("session/validation-error-with-cookie", '{"message": ""}', cookie="valid", session_id="seeded")

# Session conversation_id values of every type Flask's tagged serializer
# carries: the legacy code uses str() of the value in the Redis key and the
# value itself in the answer (jsonify for /chat, json.dumps for the stream's
# done event, which raises TypeError for UUID, datetime and bytes after the
# turns are stored: the connection drops mid-stream).
SESSION_VALUES = [
    ("list", ["a", 1]),
    ("list-mixed", ["it's", 'say "q"', "\x00\x7f\u0378\u00e9\u00a0\U0001F600", 1.5, None, True, 10**30,
                    math.nan, ("t",), {"k": [1]}]),
    ("dict", {"b": 1, "a": [1.5, None]}),
    ("dict-tag-like-key", {" t": "x"}),
    ("tuple", ("a",)),
    ("tuple-empty", ()),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("markup", Markup("<b>it's</b>")),
    ("datetime", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("bytes", b"ab'\x00\xff"),
    ("float", 7.5),
    ("nan", math.nan),
    ("infinity", math.inf),
    ("bool", True),
    ("bigint", 10**30),
    ("null", None),
    ("unicode", "caf\u00e9 \U0001F600"),
    ("empty-string", ""),
    ("lone-surrogate", "a\ud800"),  # redis-py cannot encode the key: 500 before Bedrock
    ("list-lone-surrogate", ["a\ud800"]),  # repr escapes it: a valid key
]
STREAMED = {"list", "dict", "tuple", "uuid", "markup", "datetime", "bytes", "nan", "lone-surrogate"}
for name, value in SESSION_VALUES:
    cookie = flask_cookie({"conversation_id": value})
    chat(f"session-value/chat-{name}", '{"message": "session value ' + name + '"}', cookie_value=cookie)
    if name in STREAMED:
        chat(f"session-value/stream-{name}", '{"message": "session value ' + name + '"}', path="/chat/stream",
             cookie_value=cookie)
chat("session-value/chat-history", '{"message": "continue"}', cookie_value=flask_cookie({"conversation_id": ("a",)}),
     redis=[["RPUSH", "conversation:('a',)", turn("user", "tuple key"), turn("assistant", "kept")]])
# A permanent session: Set-Cookie carries Expires from the (frozen) clock.
chat("session/permanent-new-id", '{"message": "permanent"}', cookie_value=flask_cookie({"_permanent": True}))
chat("session/permanent-with-id", '{"message": "permanent"}', redis=SEEDED,
     cookie_value=flask_cookie({"_permanent": True, "conversation_id": "seeded"}))
chat("session/permanent-stream", '{"message": "permanent"}', path="/chat/stream",
     cookie_value=flask_cookie({"_permanent": True}))

# --- chat: validation rules ------------------------------------------------
V = [
    ("body-list", '[]'), ("body-string", '"hi"'), ("body-number", '12'), ("body-true", 'true'),
    ("body-null", 'null'), ("body-nan", 'NaN'),
    ("message-missing", '{}'), ("message-null", '{"message": null}'),
    ("message-int", '{"message": 5}'), ("message-float", '{"message": 1.5}'),
    ("message-bool", '{"message": false}'), ("message-list", '{"message": ["hi"]}'),
    ("message-object", '{"message": {"text": "hi"}}'),
    ("message-empty", '{"message": ""}'), ("message-spaces", '{"message": "   "}'),
    ("message-unicode-spaces", '{"message": "\\u3000\\u00a0\\u2028\\u1680\\u200a\\u0085\\u001c\\u001f\\t\\n\\u000b"}'),
    ("message-zero-width-not-blank", '{"message": "\\u200b", "conversation_id": "zw"}'),
    ("message-order-first", '{"message": 1, "conversation_id": 1, "model": 1}'),
    ("conversation-int", '{"message": "hi", "conversation_id": 12}'),
    ("conversation-list", '{"message": "hi", "conversation_id": ["a"]}'),
    ("conversation-empty", '{"message": "hi", "conversation_id": ""}'),
    ("conversation-space", '{"message": "hi", "conversation_id": "a b"}'),
    ("conversation-slash", '{"message": "hi", "conversation_id": "a/b"}'),
    ("conversation-unicode", '{"message": "hi", "conversation_id": "caf\\u00e9"}'),
    ("conversation-newline", '{"message": "hi", "conversation_id": "abc\\n"}'),
    ("conversation-65", '{"message": "hi", "conversation_id": "' + "a" * 65 + '"}'),
    ("model-unknown", '{"message": "hi", "model": "gpt-4"}'),
    ("model-int", '{"message": "hi", "model": 3}'),
    ("model-list", '{"message": "hi", "model": ["anthropic.claude-3-haiku-20240307-v1:0"]}'),
    ("model-case", '{"message": "hi", "model": "ANTHROPIC.CLAUDE-3-HAIKU-20240307-V1:0"}'),
    ("temperature-bool", '{"message": "hi", "temperature": true}'),
    ("temperature-string", '{"message": "hi", "temperature": "0.5"}'),
    ("temperature-list", '{"message": "hi", "temperature": [0.5]}'),
    ("temperature-high", '{"message": "hi", "temperature": 1.0000001}'),
    ("temperature-int-two", '{"message": "hi", "temperature": 2}'),
    ("temperature-negative", '{"message": "hi", "temperature": -0.5}'),
    ("temperature-nan", '{"message": "hi", "temperature": NaN}'),
    ("temperature-infinity", '{"message": "hi", "temperature": Infinity}'),
    ("temperature-neg-infinity", '{"message": "hi", "temperature": -Infinity}'),
    ("temperature-overflow", '{"message": "hi", "temperature": 1e999}'),
    ("temperature-bigint", '{"message": "hi", "temperature": 123456789012345678901234567890}'),
    ("max-tokens-bool", '{"message": "hi", "max_tokens": true}'),
    ("max-tokens-float", '{"message": "hi", "max_tokens": 100.0}'),
    ("max-tokens-exponent", '{"message": "hi", "max_tokens": 1e3}'),
    ("max-tokens-string", '{"message": "hi", "max_tokens": "100"}'),
    ("max-tokens-zero", '{"message": "hi", "max_tokens": 0}'),
    ("max-tokens-negative", '{"message": "hi", "max_tokens": -1}'),
    ("max-tokens-over", '{"message": "hi", "max_tokens": 4097}'),
    ("max-tokens-bigint", '{"message": "hi", "max_tokens": 100000000000000000000000000000}'),
    ("max-tokens-opus", '{"message": "hi", "model": "anthropic.claude-3-opus-20240229-v1:0", "max_tokens": 2049}'),
    ("max-tokens-checked-after-model", '{"message": "hi", "model": "nope", "max_tokens": 0}'),
]
for name, body in V:
    chat("validation/" + name, body)
chat("validation/message-too-long", None, body_parts=[['{"message": "', 1], ["x", 4001], ['"}', 1]])
chat("validation/message-too-long-emoji", None, body_parts=[['{"message": "', 1], ["\U0001F600", 4001], ['"}', 1]])
chat("validation/message-too-long-surrogates", None, body_parts=[['{"message": "', 1], ["\\ud800", 4001], ['"}', 1]])
chat("validation/stream-message-missing", '{}', path="/chat/stream")
chat("validation/stream-max-tokens-float", '{"message": "hi", "max_tokens": 1.0}', path="/chat/stream")

# --- request bodies: get_json outcomes -------------------------------------
chat("body/no-content-type", '{"message": "hi"}', headers=[])
chat("body/text-plain", '{"message": "hi"}', headers=[["Content-Type", "text/plain"]])
chat("body/text-json", '{"message": "hi"}', headers=[["Content-Type", "text/json"]])
chat("body/form", 'message=hi', headers=[["Content-Type", "application/x-www-form-urlencoded"]])
chat("body/multipart", '--b\r\nContent-Disposition: form-data; name="message"\r\n\r\nhi\r\n--b--\r\n', headers=[["Content-Type", "multipart/form-data; boundary=b"]])
chat("body/json-then-text", '{"message": "hi"}', headers=[["Content-Type", "application/json"], ["Content-Type", "text/plain"]])
chat("body/text-then-json", '{"message": "hi"}', headers=[["Content-Type", "text/plain"], ["Content-Type", "application/json"]])
chat("body/empty", '')
chat("body/whitespace", '   ')
chat("body/malformed", '{"message": ')
chat("body/single-quotes", "{'message': 'hi'}")
chat("body/trailing-comma", '{"message": "hi",}')
chat("body/trailing-data", '{"message": "hi"} {}')
chat("body/invalid-utf8", None, body_hex=b'{"message": "\xff\xfe"}'.hex())
chat("body/overlong-utf8", None, body_hex=b'{"message": "\xc0\xaf"}'.hex())
chat("body/encoded-surrogate-utf8", None, body_hex=b'{"message": "\xed\xa0\x80"}'.hex())
chat("body/raw-control-char", '{"message": "a\tb"}')
chat("body/deep-nesting", None, body_parts=[["[", 5000], ["]", 5000]])
chat("body/huge-int", None, body_parts=[['{"message": "hi", "max_tokens": ', 1], ["9", 5000], ['}', 1]])
chat("body/too-large", None, body_parts=[['{"message": "', 1], ["y", (1 << 20) + 10], ['"}', 1]])
chat("body/limit-exact", None, body_parts=[['{"message": "hi", "pad": "', 1], ["z", (1 << 20) - 28], ['"}', 1]])
chat("body/chunked-too-large", None, chunked=True, body_parts=[['{"message": "', 1], ["y", (1 << 20) + 10], ['"}', 1]])
chat("body/chunked-limit-exact", None, chunked=True, body_parts=[['{"message": "hi", "pad": "', 1], ["z", (1 << 20) - 28], ['"}', 1]])
chat("body/stream-no-content-type", '{"message": "hi"}', path="/chat/stream", headers=[])
chat("body/stream-malformed", '{', path="/chat/stream")
chat("body/stream-too-large", None, path="/chat/stream", body_parts=[['{"message": "', 1], ["y", (1 << 20) + 10], ['"}', 1]])

# --- Bedrock faults ---------------------------------------------------------
for fault in ["throttle", "unavailable", "model-timeout", "validation", "stream-error", "hang"]:
    chat("fault/chat-" + fault, '{"message": "fault [[stub-fault:' + fault + ']]"}')
    chat("fault/stream-" + fault, '{"message": "fault [[stub-fault:' + fault + ']]", "conversation_id": "f"}', path="/chat/stream")
chat("fault/chat-throttle-with-cookie", '{"message": "[[stub-fault:throttle]]"}', cookie="valid", session_id="seeded", redis=SEEDED)

# --- Redis down -------------------------------------------------------------
chat("redis-down/chat", '{"message": "hi"}', redis_down=True)
chat("redis-down/chat-explicit-id", '{"message": "hi", "conversation_id": "x"}', redis_down=True)
chat("redis-down/stream", '{"message": "hi"}', path="/chat/stream", redis_down=True)
chat("redis-down/validation-first", '{"message": ""}', redis_down=True)
add("redis-down/get", "GET", "/conversations/x", redis_down=True)
add("redis-down/delete", "DELETE", "/conversations/x", redis_down=True)
add("redis-down/health", "GET", "/health", redis_down=True)

# --- streaming ----------------------------------------------------------------
chat("stream/basic", '{"message": "Stream me a story"}', path="/chat/stream")
chat("stream/non-ascii", '{"message": "\u00bfQu\u00e9 tal? \U0001F30D <tag> & \\"quotes\\""}', path="/chat/stream")
chat("stream/with-history", '{"message": "continue", "conversation_id": "seeded"}', path="/chat/stream", redis=SEEDED)
chat("stream/max-tokens-cut", '{"message": "long", "max_tokens": 2, "conversation_id": "cut"}', path="/chat/stream")
chat("stream/all-fields", '{"message": "hi", "conversation_id": "s1", "model": "anthropic.claude-3-5-haiku-20241022-v1:0", "temperature": 1, "max_tokens": 50}', path="/chat/stream")
chat("stream/chunked-request", '{"message": "chunked stream"}', path="/chat/stream", chunked=True)
chat("stream/unreadable-history", '{"message": "hi", "conversation_id": "bad"}', path="/chat/stream", redis=[["RPUSH", "conversation:bad", "[1]"]])
chat("chat/unreadable-history", '{"message": "hi", "conversation_id": "bad"}', redis=[["RPUSH", "conversation:bad", "[1]"]])
chat("chat/history-wrong-type", '{"message": "hi", "conversation_id": "str"}', redis=[["SET", "conversation:str", "x"]])

# --- slow Bedrock (served by a stub with token pacing; see slow.json) --------
slow = []
slow.append({"name": "slow/chat-read-timeout", "method": "POST", "target": "/chat", "headers": JSON,
             "body": '{"message": "take your time"}'})
slow.append({"name": "slow/stream-idle-timeout", "method": "POST", "target": "/chat/stream", "headers": JSON,
             "body": '{"message": "take your time", "conversation_id": "slow"}'})
slow.append({"name": "slow/health", "method": "GET", "target": "/health", "headers": []})

if len(sys.argv) > 1 and sys.argv[1] == "slow":
    cases = slow

names = [c["name"] for c in cases]
dups = {n for n in names if names.count(n) > 1}
if dups:
    sys.exit(f"duplicate case names: {sorted(dups)}")
json.dump({"cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
sys.stdout.write("\n")
