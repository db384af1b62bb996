"""End-to-end tests of the legacy app with its default settings.

Real redis-server, the real Bedrock stub (behind a Recorder, so the exact Bedrock
request is visible) and the app under real gunicorn sync workers.
"""

import base64
import json
import re
import socket
import time
import unittest
from datetime import datetime
from urllib.parse import quote

import harness
from harness import header, parse_sse, session_cookie

DEFAULT_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
OPUS = "anthropic.claude-3-opus-20240229-v1:0"
MODELS = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    OPUS,
]
DEFAULT_SYSTEM = (
    "You are a helpful, concise assistant. Answer clearly and accurately. "
    "If you do not know something, say so instead of guessing."
)
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

redis = stub = recorder = app = None


def setUpModule():
    global redis, stub, recorder, app
    try:
        redis = harness.Redis()
        redis.start()
        stub = harness.Stub()
        stub.start()
        recorder = harness.Recorder(stub.port)
        recorder.start()
        app = harness.Legacy(redis.url, recorder.url, workers=2)
        app.start()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    harness.stop_all(app, recorder, stub, redis)


def validation(message):
    return {"code": "validation_error", "error": message}


class Base(unittest.TestCase):
    def chat(self, payload, cookie=None, path="/chat"):
        status, headers, body = app.post_json(path, payload, cookie=cookie)
        return status, headers, body

    def ok_chat(self, payload, cookie=None):
        status, headers, body = self.chat(payload, cookie)
        self.assertEqual(status, 200, body)
        return headers, json.loads(body)

    def assert_werkzeug_page(self, status, headers, body, code, title):
        self.assertEqual(status, code, body)
        self.assertEqual(header(headers, "Content-Type"), ["text/html; charset=utf-8"])
        self.assertTrue(body.startswith(b"<!doctype html>\n<html lang=en>\n<title>" + title.encode()), body)

    def bedrock_calls(self, before):
        return recorder.since(before)


class TestSimpleEndpoints(Base):
    def test_health(self):
        status, headers, body = app.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(body, b'{"status":"ok"}\n')
        self.assertEqual(header(headers, "Content-Type"), ["application/json"])

    def test_models(self):
        status, headers, body = app.request("GET", "/models")
        self.assertEqual(status, 200)
        got = json.loads(body)
        self.assertEqual(got["default"], DEFAULT_MODEL)
        self.assertEqual([m["id"] for m in got["models"]], MODELS)
        self.assertEqual({m["id"]: m["max_tokens"] for m in got["models"]},
                         {m: (2048 if m == OPUS else 4096) for m in MODELS})
        # Flask's default provider: sorted keys, compact, trailing newline.
        self.assertEqual(body, json.dumps(got, sort_keys=True, separators=(",", ":")).encode() + b"\n")

    def test_werkzeug_defaults_for_unrouted_requests(self):
        status, headers, body = app.request("GET", "/nope")
        self.assert_werkzeug_page(status, headers, body, 404, "404 Not Found")
        status, headers, body = app.request("POST", "/health")
        self.assert_werkzeug_page(status, headers, body, 405, "405 Method Not Allowed")
        status, headers, body = app.request("GET", "/chat")
        self.assert_werkzeug_page(status, headers, body, 405, "405 Method Not Allowed")
        status, headers, body = app.request("PUT", "/conversations/abc")
        self.assert_werkzeug_page(status, headers, body, 405, "405 Method Not Allowed")


class TestRequestParsing(Base):
    """request.get_json() with its defaults, and MAX_CONTENT_LENGTH."""

    def test_wrong_or_missing_content_type_is_415(self):
        for path in ("/chat", "/chat/stream"):
            for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "text/json"}):
                with self.subTest(path=path, headers=headers):
                    status, h, body = app.request("POST", path, body=b'{"message":"hi"}', headers=headers)
                    self.assert_werkzeug_page(status, h, body, 415, "415 Unsupported Media Type")

    def test_malformed_json_is_400_page(self):
        for raw in (b"{", b"", b"{'message': 'hi'}", b'{"message": "hi"} x', b'{"message": "a\tb"}'):
            for path in ("/chat", "/chat/stream"):
                with self.subTest(raw=raw, path=path):
                    status, h, body = app.post_json(path, None, raw=raw)
                    self.assert_werkzeug_page(status, h, body, 400, "400 Bad Request")

    def test_json_content_type_variants_are_accepted(self):
        for ctype in ("application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json"):
            with self.subTest(ctype=ctype):
                status, h, body = app.request("POST", "/chat", body=b"[]", headers={"Content-Type": ctype})
                self.assertEqual(status, 400)
                self.assertEqual(json.loads(body), validation("request body must be a JSON object"))

    def test_body_over_max_content_length_is_413(self):
        # Werkzeug answers from the Content-Length alone, before reading the body. Sending the whole
        # oversized body would race gunicorn closing the socket (EPIPE or a reset instead of the answer),
        # so announce limit + 1 bytes and send only the start.
        limit = 1024 * 1024
        with socket.create_connection(("127.0.0.1", app.port), timeout=30) as s:
            s.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(limit + 1).encode() + b"\r\n\r\n" + b'{"message": "')
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE\r\n"), head)
        self.assertIn(b"<title>413 Request Entity Too Large</title>", body)

    def test_body_of_exactly_max_content_length_is_read(self):
        limit = 1024 * 1024
        raw = b'{"message": "' + b"x" * (limit - len(b'{"message": ""}')) + b'"}'
        self.assertEqual(len(raw), limit)
        status, h, body = app.post_json("/chat", None, raw=raw)
        self.assertEqual(status, 400, body[:200])
        self.assertEqual(json.loads(body), validation("message must be at most 4000 characters"))

    def test_deep_nesting_is_flask_500(self):
        # json.loads raises RecursionError, which is not a ValueError: Flask's default 500 page.
        status, h, body = app.post_json("/chat", None, raw=b"[" * 100000)
        self.assert_werkzeug_page(status, h, body, 500, "500 Internal Server Error")


class TestValidation(Base):
    """Each rule, its message, and the order rules are checked in; none may reach Bedrock."""

    CASES = [
        # body
        ([], "request body must be a JSON object"),
        ("hi", "request body must be a JSON object"),
        (None, "request body must be a JSON object"),
        (1, "request body must be a JSON object"),
        # message
        ({}, "message is required"),
        ({"message": None}, "message is required"),
        ({"message": 5}, "message must be a string"),
        ({"message": ["hi"]}, "message must be a string"),
        ({"message": True}, "message must be a string"),
        ({"message": ""}, "message must not be blank"),
        ({"message": " \t\r\n"}, "message must not be blank"),
        ({"message": "\u3000\u00a0\u2028\x1c"}, "message must not be blank"),
        ({"message": "x" * 4001}, "message must be at most 4000 characters"),
        ({"message": "\U0001f600" * 4001}, "message must be at most 4000 characters"),
        # conversation_id
        ({"message": "hi", "conversation_id": 5}, "conversation_id must be a string"),
        ({"message": "hi", "conversation_id": ["a"]}, "conversation_id must be a string"),
        ({"message": "hi", "conversation_id": ""},
         "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"),
        ({"message": "hi", "conversation_id": "a b"},
         "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"),
        ({"message": "hi", "conversation_id": "abc\n"},
         "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"),
        ({"message": "hi", "conversation_id": "caf\u00e9"},
         "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"),
        ({"message": "hi", "conversation_id": "x" * 65},
         "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"),
        # model
        ({"message": "hi", "model": "gpt-4"}, "model must be one of: " + ", ".join(MODELS)),
        ({"message": "hi", "model": 5}, "model must be one of: " + ", ".join(MODELS)),
        ({"message": "hi", "model": [DEFAULT_MODEL]}, "model must be one of: " + ", ".join(MODELS)),
        ({"message": "hi", "model": ""}, "model must be one of: " + ", ".join(MODELS)),
        # temperature
        ({"message": "hi", "temperature": "0.5"}, "temperature must be a number"),
        ({"message": "hi", "temperature": True}, "temperature must be a number"),
        ({"message": "hi", "temperature": False}, "temperature must be a number"),
        ({"message": "hi", "temperature": [0.5]}, "temperature must be a number"),
        ({"message": "hi", "temperature": -0.1}, "temperature must be between 0 and 1"),
        ({"message": "hi", "temperature": 1.0000001}, "temperature must be between 0 and 1"),
        ({"message": "hi", "temperature": 2}, "temperature must be between 0 and 1"),
        ({"message": "hi", "temperature": 10 ** 30}, "temperature must be between 0 and 1"),
        # max_tokens
        ({"message": "hi", "max_tokens": 5.0}, "max_tokens must be an integer"),
        ({"message": "hi", "max_tokens": 10.5}, "max_tokens must be an integer"),
        ({"message": "hi", "max_tokens": "5"}, "max_tokens must be an integer"),
        ({"message": "hi", "max_tokens": True}, "max_tokens must be an integer"),
        ({"message": "hi", "max_tokens": 0}, "max_tokens must be between 1 and 4096"),
        ({"message": "hi", "max_tokens": -1}, "max_tokens must be between 1 and 4096"),
        ({"message": "hi", "max_tokens": 4097}, "max_tokens must be between 1 and 4096"),
        ({"message": "hi", "max_tokens": 10 ** 30}, "max_tokens must be between 1 and 4096"),
        ({"message": "hi", "model": OPUS, "max_tokens": 2049},
         f"max_tokens must be at most 2048 for model {OPUS}"),
        # order: the first failing rule wins
        ({"message": 5, "conversation_id": 5, "model": "x", "temperature": "x", "max_tokens": "x"},
         "message must be a string"),
        ({"message": "hi", "conversation_id": 5, "model": "x", "temperature": "x", "max_tokens": "x"},
         "conversation_id must be a string"),
        ({"message": "hi", "model": "x", "temperature": "x", "max_tokens": "x"},
         "model must be one of: " + ", ".join(MODELS)),
        ({"message": "hi", "temperature": 5, "max_tokens": "x"}, "temperature must be between 0 and 1"),
        ({"message": "", "model": "x"}, "message must not be blank"),
    ]

    def test_rules(self):
        before = recorder.count()
        for path in ("/chat", "/chat/stream"):
            for payload, message in self.CASES:
                with self.subTest(path=path, payload=repr(payload)[:80]):
                    status, headers, body = self.chat(payload, path=path)
                    self.assertEqual(status, 400, body)
                    self.assertEqual(header(headers, "Content-Type"), ["application/json"])
                    self.assertEqual(json.loads(body), validation(message))
                    self.assertEqual(body, json.dumps(validation(message), sort_keys=True,
                                                      separators=(",", ":")).encode() + b"\n")
        self.assertEqual(recorder.count(), before, "an invalid request reached Bedrock")

    def test_nan_and_infinity_temperature_are_out_of_range(self):
        for raw in (b'{"message": "hi", "temperature": NaN}', b'{"message": "hi", "temperature": Infinity}',
                    b'{"message": "hi", "temperature": -Infinity}', b'{"message": "hi", "temperature": 1e400}'):
            with self.subTest(raw=raw):
                status, _, body = app.post_json("/chat", None, raw=raw)
                self.assertEqual(status, 400)
                self.assertEqual(json.loads(body), validation("temperature must be between 0 and 1"))

    def test_boundaries_are_accepted(self):
        cases = [
            {"message": "x" * 4000, "conversation_id": "bound-1"},
            {"message": "\U0001f600" * 4000, "conversation_id": "bound-2"},  # code points, not UTF-16 units
            {"message": " a ", "conversation_id": "x" * 64},
            {"message": "hi", "conversation_id": "bound-3", "temperature": 0, "max_tokens": 1},
            {"message": "hi", "conversation_id": "bound-4", "temperature": 1, "max_tokens": 4096},
            {"message": "hi", "conversation_id": "bound-5", "temperature": 1.0, "model": OPUS, "max_tokens": 2048},
            {"message": "hi", "conversation_id": "bound-6", "temperature": None, "max_tokens": None, "model": None},
            {"message": "hi", "conversation_id": "bound-7", "unknown": {"ignored": True}},
        ]
        for payload in cases:
            with self.subTest(payload=repr(payload)[:80]):
                status, _, body = self.chat(payload)
                self.assertEqual(status, 200, body)


class TestChat(Base):
    def test_new_session_then_reuse(self):
        before = recorder.count()
        headers, first = self.ok_chat({"message": "Hello there <b>&\"friend\"</b> \u00e9 \U0001f600"})
        cookie = session_cookie(headers)
        self.assertIsNotNone(cookie, headers)
        set_cookie = header(headers, "Set-Cookie")[0]
        self.assertRegex(set_cookie, r"^session=[A-Za-z0-9_.-]+; HttpOnly; Path=/$")
        self.assertEqual(header(headers, "Vary"), ["Cookie"])
        self.assertRegex(first["conversation_id"], UUID4)
        self.assertEqual(set(first), {"conversation_id", "reply", "model", "stop_reason", "usage"})
        self.assertEqual(first["model"], DEFAULT_MODEL)
        self.assertIsInstance(first["reply"], str)
        self.assertNotEqual(first["reply"], "")
        self.assertIsInstance(first["stop_reason"], str)
        self.assertEqual(set(first["usage"]), {"input_tokens", "output_tokens"})
        self.assertGreater(first["usage"]["input_tokens"], 0)
        self.assertGreater(first["usage"]["output_tokens"], 0)

        calls = self.bedrock_calls(before)
        self.assertEqual(len(calls), 1)
        path, hdrs, raw = calls[0]
        self.assertEqual(path, "/model/" + quote(DEFAULT_MODEL, safe="") + "/invoke")
        self.assertEqual(hdrs.get("content-type"), "application/json")
        self.assertEqual(hdrs.get("accept"), "application/json")
        sent = json.loads(raw)
        self.assertEqual(list(sent), ["anthropic_version", "system", "messages", "max_tokens", "temperature"])
        self.assertEqual(sent, {
            "anthropic_version": "bedrock-2023-05-31",
            "system": DEFAULT_SYSTEM,
            "messages": [{"role": "user", "content": "Hello there <b>&\"friend\"</b> \u00e9 \U0001f600"}],
            "max_tokens": 1024,
            "temperature": 0.7,
        })
        self.assertEqual(raw, json.dumps(sent).encode())  # Python's default separators, ASCII only

        # Second turn, same cookie: same conversation, no new cookie, history sent along.
        before = recorder.count()
        headers, second = self.ok_chat({"message": "and again"}, cookie=cookie)
        self.assertEqual(second["conversation_id"], first["conversation_id"])
        self.assertEqual(header(headers, "Set-Cookie"), [])
        self.assertEqual(header(headers, "Vary"), ["Cookie"])
        sent = json.loads(self.bedrock_calls(before)[0][2])
        self.assertEqual(sent["messages"], [
            {"role": "user", "content": "Hello there <b>&\"friend\"</b> \u00e9 \U0001f600"},
            {"role": "assistant", "content": first["reply"]},
            {"role": "user", "content": "and again"},
        ])

        # What is stored: one JSON document per turn, in order, Python's default separators.
        items = redis.client().lrange("conversation:" + first["conversation_id"], 0, -1)
        self.assertEqual(len(items), 4)
        turns = [json.loads(i) for i in items]
        for item, turn in zip(items, turns):
            self.assertEqual(list(turn), ["role", "content", "created_at"])
            self.assertEqual(item, json.dumps(turn))
        self.assertEqual([(t["role"], t["content"]) for t in turns], [
            ("user", "Hello there <b>&\"friend\"</b> \u00e9 \U0001f600"), ("assistant", first["reply"]),
            ("user", "and again"), ("assistant", second["reply"]),
        ])

        # And the same through the API.
        status, h, body = app.request("GET", "/conversations/" + first["conversation_id"])
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"conversation_id": first["conversation_id"], "messages": turns})
        self.assertTrue(body.isascii())

    def test_response_json_is_flask_default(self):
        status, _, body = app.post_json("/chat", {"message": "show me the encoding", "conversation_id": "enc-2"})
        self.assertEqual(status, 200)
        got = json.loads(body)
        self.assertEqual(body, json.dumps(got, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        self.assertTrue(body.isascii())
        # The stub's replies mix in non-ASCII, so ensure_ascii escaping is exercised.
        self.assertFalse(got["reply"].isascii(), got["reply"])

    def test_created_at_is_utc_isoformat_now(self):
        before = time.time()
        self.ok_chat({"message": "what time is it", "conversation_id": "clock-1"})
        after = time.time()
        items = redis.client().lrange("conversation:clock-1", 0, -1)
        for item in items:
            created = json.loads(item)["created_at"]
            self.assertRegex(created, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
            ts = datetime.fromisoformat(created).timestamp()
            self.assertLessEqual(before - 1, ts)
            self.assertLessEqual(ts, after + 1)

    def test_explicit_conversation_id_does_not_touch_the_session(self):
        headers, got = self.ok_chat({"message": "hi", "conversation_id": "My_conv-1"})
        self.assertEqual(got["conversation_id"], "My_conv-1")
        self.assertEqual(header(headers, "Set-Cookie"), [])
        self.assertEqual(header(headers, "Vary"), [])

    def test_options_reach_bedrock(self):
        before = recorder.count()
        _, got = self.ok_chat({"message": "hi", "conversation_id": "opts-1", "model": OPUS,
                               "temperature": 1, "max_tokens": 2048})
        self.assertEqual(got["model"], OPUS)
        path, _, raw = self.bedrock_calls(before)[0]
        self.assertEqual(path, "/model/" + quote(OPUS, safe="") + "/invoke")
        self.assertIn(b'"max_tokens": 2048, "temperature": 1}', raw)  # an int stays an int

    def test_fresh_sessions_get_distinct_random_ids(self):
        # No test hooks here: the same body twice gives two conversations, cookies stamped with now.
        ids = set()
        for _ in range(2):
            headers, got = self.ok_chat({"message": "same body"})
            ids.add(got["conversation_id"])
            cookie = session_cookie(headers)
            ts = cookie.split(".")[1]
            stamp = int.from_bytes(base64.urlsafe_b64decode(ts + "=" * (-len(ts) % 4)), "big")
            self.assertLess(abs(stamp - time.time()), 3600)
        self.assertEqual(len(ids), 2)

    def test_foreign_or_tampered_cookie_starts_a_new_session(self):
        headers, got = self.ok_chat({"message": "hi"})
        cookie = session_cookie(headers)
        tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
        for bad in (tampered, "session=garbage", "session="):
            with self.subTest(cookie=bad):
                headers2, got2 = self.ok_chat({"message": "hi"}, cookie=bad)
                self.assertNotEqual(got2["conversation_id"], got["conversation_id"])
                self.assertIsNotNone(session_cookie(headers2))

    def test_history_window_is_last_ten_turns(self):
        cid = "window-1"
        replies = []
        for i in range(12):
            _, got = self.ok_chat({"message": f"turn {i}", "conversation_id": cid})
            replies.append(got["reply"])
        before = recorder.count()
        self.ok_chat({"message": "turn 12", "conversation_id": cid})
        sent = json.loads(self.bedrock_calls(before)[0][2])["messages"]
        expected = []
        for i in range(2, 12):
            expected += [{"role": "user", "content": f"turn {i}"}, {"role": "assistant", "content": replies[i]}]
        self.assertEqual(sent, expected + [{"role": "user", "content": "turn 12"}])
        self.assertEqual(redis.client().llen("conversation:" + cid), 26)  # everything is kept

    def test_same_request_same_reply(self):
        # The stub is deterministic, so equal Bedrock bodies give equal replies.
        _, a = self.ok_chat({"message": "repeat me", "conversation_id": "same-a"})
        _, b = self.ok_chat({"message": "repeat me", "conversation_id": "same-b"})
        self.assertEqual((a["reply"], a["usage"], a["stop_reason"]), (b["reply"], b["usage"], b["stop_reason"]))


class TestConversations(Base):
    def test_get_unknown_is_404_json(self):
        for cid in ("never-seen", "%E2%9C%93", "a.b"):
            with self.subTest(cid=cid):
                status, headers, body = app.request("GET", "/conversations/" + cid)
                self.assertEqual(status, 404)
                self.assertEqual(body, b'{"code":"not_found","error":"conversation not found"}\n')
                status, headers, body = app.request("DELETE", "/conversations/" + cid)
                self.assertEqual(status, 404)
                self.assertEqual(body, b'{"code":"not_found","error":"conversation not found"}\n')

    def test_delete(self):
        self.ok_chat({"message": "remember me", "conversation_id": "del-1"})
        status, headers, body = app.request("DELETE", "/conversations/del-1")
        self.assertEqual(status, 204)
        self.assertEqual(body, b"")
        self.assertEqual(header(headers, "Content-Type"), ["text/html; charset=utf-8"])
        self.assertEqual(redis.client().exists("conversation:del-1"), 0)
        status, _, _ = app.request("GET", "/conversations/del-1")
        self.assertEqual(status, 404)
        status, _, _ = app.request("DELETE", "/conversations/del-1")
        self.assertEqual(status, 404)

    def test_get_reads_whatever_the_list_holds(self):
        r = redis.client()
        r.delete("conversation:seeded")
        r.rpush("conversation:seeded",
                json.dumps({"role": "user", "content": "q \u00e9", "created_at": "2024-01-02T03:04:05+00:00"}),
                json.dumps({"role": "assistant", "content": "a", "created_at": "2024-01-02T03:04:05.000001+00:00"}))
        status, _, body = app.request("GET", "/conversations/seeded")
        self.assertEqual(status, 200)
        self.assertEqual(body, (
            b'{"conversation_id":"seeded","messages":['
            b'{"content":"q \\u00e9","created_at":"2024-01-02T03:04:05+00:00","role":"user"},'
            b'{"content":"a","created_at":"2024-01-02T03:04:05.000001+00:00","role":"assistant"}]}\n'))


class TestStream(Base):
    def stream(self, payload, cookie=None):
        return self.chat(payload, cookie=cookie, path="/chat/stream")

    def test_stream_matches_chat_and_is_stored(self):
        before = recorder.count()
        status, headers, body = self.stream({"message": "stream to me", "conversation_id": "st-1"})
        self.assertEqual(status, 200, body)
        self.assertEqual(header(headers, "Content-Type"), ["text/event-stream; charset=utf-8"])
        self.assertEqual(header(headers, "Transfer-Encoding"), ["chunked"])
        path, _, raw = self.bedrock_calls(before)[0]
        self.assertEqual(path, "/model/" + quote(DEFAULT_MODEL, safe="") + "/invoke-with-response-stream")

        events = parse_sse(body)
        deltas = [d for e, d in events if e == "delta"]
        self.assertGreater(len(deltas), 1)
        self.assertEqual([e for e, _ in events], ["delta"] * len(deltas) + ["done"])
        for d in deltas:
            self.assertEqual(list(d), ["text"])
        text = "".join(d["text"] for d in deltas)
        done = events[-1][1]
        self.assertEqual(list(done), ["conversation_id", "usage", "stop_reason"])
        self.assertEqual(done["conversation_id"], "st-1")
        # Raw framing: json.dumps with default separators.
        expected = "".join(f"event: delta\ndata: {json.dumps(d)}\n\n" for d in deltas)
        expected += f"event: done\ndata: {json.dumps(done)}\n\n"
        self.assertEqual(body.decode(), expected)

        # Same Bedrock body through /chat: same reply, usage and stop reason.
        _, got = self.ok_chat({"message": "stream to me", "conversation_id": "st-1-twin"})
        self.assertEqual(text, got["reply"])
        self.assertEqual(done["usage"], got["usage"])
        self.assertEqual(done["stop_reason"], got["stop_reason"])

        status, _, body = app.request("GET", "/conversations/st-1")
        self.assertEqual(status, 200)
        msgs = json.loads(body)["messages"]
        self.assertEqual([(m["role"], m["content"]) for m in msgs],
                         [("user", "stream to me"), ("assistant", text)])

    def test_stream_session_cookie(self):
        status, headers, body = self.stream({"message": "new stream session"})
        self.assertEqual(status, 200)
        cookie = session_cookie(headers)
        self.assertIsNotNone(cookie)
        cid = parse_sse(body)[-1][1]["conversation_id"]
        self.assertRegex(cid, UUID4)
        status, headers, body = self.stream({"message": "next"}, cookie=cookie)
        self.assertEqual(parse_sse(body)[-1][1]["conversation_id"], cid)
        self.assertEqual(header(headers, "Set-Cookie"), [])
        status, _, body = app.request("GET", "/conversations/" + cid)
        self.assertEqual(len(json.loads(body)["messages"]), 4)

    def test_stream_error_midway(self):
        status, headers, body = self.stream({"message": "break [[stub-fault:stream-error]]", "conversation_id": "st-err"})
        self.assertEqual(status, 200)
        events = parse_sse(body)
        self.assertEqual([e for e, _ in events], ["delta", "delta", "delta", "error"])
        self.assertEqual(events[-1][1], {"error": "the model stream failed", "code": "bedrock_error"})
        self.assertTrue(body.endswith(
            b'event: error\ndata: {"error": "the model stream failed", "code": "bedrock_error"}\n\n'))
        status, _, _ = app.request("GET", "/conversations/st-err")
        self.assertEqual(status, 404, "a failed stream must not be stored")


class TestBedrockFaults(Base):
    """Stub faults end to end, for /chat and /chat/stream (before the stream starts)."""

    def fault(self, path, name):
        before = recorder.count()
        cid = f"fault-{name}-{path.strip('/').replace('/', '-')}"
        status, headers, body = app.post_json(path, {"message": f"x [[stub-fault:{name}]]", "conversation_id": cid})
        attempts = len(self.bedrock_calls(before))
        status_get, _, _ = app.request("GET", "/conversations/" + cid)
        self.assertEqual(status_get, 404, "a failed turn must not be stored")
        return status, headers, body, attempts

    def test_throttle_is_429_after_retries(self):
        for path in ("/chat", "/chat/stream"):
            with self.subTest(path=path):
                status, headers, body, attempts = self.fault(path, "throttle")
                self.assertEqual(status, 429)
                self.assertEqual(header(headers, "Retry-After"), ["1"])
                self.assertEqual(header(headers, "Content-Type"), ["application/json"])
                self.assertEqual(body, b'{"code":"throttled","error":"the model is busy, please retry shortly"}\n')
                self.assertEqual(attempts, 3)  # BEDROCK_MAX_ATTEMPTS default, standard retry mode

    def test_other_faults_are_502(self):
        cases = [("unavailable", 3), ("validation", 1), ("model-timeout", 1)]
        for path in ("/chat", "/chat/stream"):
            for name, want_attempts in cases:
                with self.subTest(path=path, fault=name):
                    status, headers, body, attempts = self.fault(path, name)
                    self.assertEqual(status, 502)
                    self.assertEqual(header(headers, "Retry-After"), [])
                    self.assertEqual(body, b'{"code":"bedrock_error","error":"the model could not answer, please retry"}\n')
                    self.assertEqual(attempts, want_attempts)
        status, _, body, _ = self.fault("/chat", "stream-error")  # ModelErrorException (424) outside a stream
        self.assertEqual(status, 502)
        self.assertEqual(json.loads(body)["code"], "bedrock_error")


if __name__ == "__main__":
    unittest.main()
