"""The determinism hooks (testhooks.py), loaded by gunicorn.conf.py only when enabled."""

import base64
import hashlib
import json
import unittest
import uuid
from unittest import mock

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous.timed import TimestampSigner

import harness
from harness import parse_sse, session_cookie

CLOCK = "1700000000.25"
CREATED_AT = "2023-11-14T22:13:20.250000+00:00"

redis = stub = app = None


def setUpModule():
    global redis, stub, app
    try:
        redis = harness.Redis()
        redis.start()
        stub = harness.Stub()
        stub.start()
        app = harness.Legacy(redis.url, stub.url, workers=2, CUTOVER_TEST_CLOCK=CLOCK, CUTOVER_TEST_IDS="1")
        app.start()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    harness.stop_all(app, stub, redis)


def id_for(body):
    return str(uuid.UUID(bytes=hashlib.sha256(body).digest()[:16], version=4))


def expected_cookie(conversation_id):
    """What Flask itself signs for this session at the frozen timestamp, computed here."""
    flask_app = Flask("expected")
    flask_app.secret_key = harness.SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(flask_app)
    with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: 1700000000):
        return "session=" + serializer.dumps({"conversation_id": conversation_id})


class TestHooks(unittest.TestCase):
    def test_ids_clock_and_cookie_are_deterministic(self):
        raw = b'{"message": "deterministic please"}'
        status, headers, body = app.post_json("/chat", None, raw=raw)
        self.assertEqual(status, 200, body)
        cid = json.loads(body)["conversation_id"]
        self.assertEqual(cid, id_for(raw))
        cookie = session_cookie(headers)
        self.assertEqual(cookie, expected_cookie(cid))
        stamp = cookie.split(".")[1]
        self.assertEqual(int.from_bytes(base64.urlsafe_b64decode(stamp + "=" * (-len(stamp) % 4)), "big"), 1700000000)

        stored = [json.loads(i) for i in redis.client().lrange("conversation:" + cid, 0, -1)]
        self.assertEqual([t["created_at"] for t in stored], [CREATED_AT, CREATED_AT])
        status, _, body = app.request("GET", "/conversations/" + cid)
        self.assertEqual([m["created_at"] for m in json.loads(body)["messages"]], [CREATED_AT, CREATED_AT])

        # The same body from another client (no cookie) lands in the same conversation.
        status, headers, body = app.post_json("/chat", None, raw=raw)
        self.assertEqual(json.loads(body)["conversation_id"], cid)
        self.assertEqual(session_cookie(headers), expected_cookie(cid))
        self.assertEqual(redis.client().llen("conversation:" + cid), 4)

    def test_id_comes_from_the_exact_body_bytes(self):
        a = b'{"message": "spacing matters"}'
        b = b'{"message":"spacing matters"}'
        _, _, body_a = app.post_json("/chat", None, raw=a)
        _, _, body_b = app.post_json("/chat", None, raw=b)
        self.assertEqual(json.loads(body_a)["conversation_id"], id_for(a))
        self.assertEqual(json.loads(body_b)["conversation_id"], id_for(b))
        self.assertNotEqual(id_for(a), id_for(b))

    def test_stream_uses_the_hooks_too(self):
        raw = b'{"message": "stream deterministic"}'
        status, headers, body = app.post_json("/chat/stream", None, raw=raw)
        self.assertEqual(status, 200)
        self.assertEqual(parse_sse(body)[-1][1]["conversation_id"], id_for(raw))
        self.assertEqual(session_cookie(headers), expected_cookie(id_for(raw)))

    def test_permanent_session_expires_from_the_frozen_clock(self):
        flask_app = Flask("expected")
        flask_app.secret_key = harness.SECRET_KEY
        serializer = SecureCookieSessionInterface().get_signing_serializer(flask_app)
        with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: 1700000000):
            cookie = "session=" + serializer.dumps({"_permanent": True, "conversation_id": "perm"})
        status, headers, body = app.post_json("/chat", {"message": "hi"}, cookie=cookie)
        self.assertEqual(status, 200, body)
        set_cookie = harness.header(headers, "Set-Cookie")
        self.assertEqual(len(set_cookie), 1, headers)
        # 1700000000.25 + PERMANENT_SESSION_LIFETIME (31 days), as http_date writes it
        self.assertIn("; Expires=Fri, 15 Dec 2023 22:13:20 GMT;", set_cookie[0])

    def test_explicit_id_is_kept(self):
        status, headers, body = app.post_json("/chat", {"message": "hi", "conversation_id": "given-id"})
        self.assertEqual(json.loads(body)["conversation_id"], "given-id")
        self.assertIsNone(session_cookie(headers))


if __name__ == "__main__":
    unittest.main()
