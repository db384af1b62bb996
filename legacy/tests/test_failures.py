"""Failure paths: Bedrock that never answers, tight limits from env, Redis going away."""

import http.client
import json
import unittest

import harness
from harness import header, parse_sse, session_cookie

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
STORE_DOWN = b'{"code":"store_unavailable","error":"conversation store unavailable"}\n'

stub = redis = None


def setUpModule():
    global stub, redis
    try:
        stub = harness.Stub()
        stub.start()
        redis = harness.Redis()
        redis.start()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    harness.stop_all(stub, redis)


class TestTightSettings(unittest.TestCase):
    """An app configured through every size/timeout env var, talking to the stub via a Recorder."""

    @classmethod
    def setUpClass(cls):
        cls.recorder = harness.Recorder(stub.port)
        cls.recorder.start()
        cls.app = harness.Legacy(
            redis.url, cls.recorder.url, workers=1,
            BEDROCK_TIMEOUT="2", BEDROCK_MAX_ATTEMPTS="1", MAX_MESSAGE_CHARS="25", HISTORY_TURNS="1",
            MAX_CONTENT_LENGTH="2048", SYSTEM_PROMPT="Be brief.", BEDROCK_MODEL_ID=HAIKU,
        )
        try:
            cls.app.start()
        except Exception:
            harness.stop_all(cls.app, cls.recorder)
            raise

    @classmethod
    def tearDownClass(cls):
        # Stop the app first: the Recorder may still hold a hung request to the stub.
        harness.stop_all(cls.app, cls.recorder)

    def test_hang_times_out_as_502(self):
        for path in ("/chat", "/chat/stream"):
            with self.subTest(path=path):
                before = self.recorder.count()
                cid = "hang-" + path.strip("/").replace("/", "-")
                status, headers, body = self.app.post_json(
                    path, {"message": "[[stub-fault:hang]]", "conversation_id": cid})
                self.assertEqual(status, 502, body)
                self.assertEqual(body, b'{"code":"bedrock_error","error":"the model could not answer, please retry"}\n')
                self.assertEqual(self.recorder.count() - before, 1)  # BEDROCK_MAX_ATTEMPTS=1
                status, _, _ = self.app.request("GET", "/conversations/" + cid)
                self.assertEqual(status, 404)

    def test_throttle_single_attempt(self):
        before = self.recorder.count()
        status, headers, _ = self.app.post_json("/chat", {"message": "[[stub-fault:throttle]]"})
        self.assertEqual(status, 429)
        self.assertEqual(header(headers, "Retry-After"), ["1"])
        self.assertEqual(self.recorder.count() - before, 1)

    def test_message_limit(self):
        status, _, body = self.app.post_json("/chat", {"message": "x" * 26})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body), {"code": "validation_error", "error": "message must be at most 25 characters"})
        status, _, body = self.app.post_json("/chat", {"message": "x" * 25, "conversation_id": "limit-ok"})
        self.assertEqual(status, 200, body)

    def test_content_length_limit_is_inclusive(self):
        def body_of(size):
            raw = b'{"message": "hi", "conversation_id": "cl", "pad": "' + b"p" * 4096
            raw = raw[: size - 2] + b'"}'
            self.assertEqual(len(raw), size)
            return raw

        status, _, body = self.app.post_json("/chat", None, raw=body_of(2049))
        self.assertEqual(status, 413)
        self.assertIn(b"<title>413 Request Entity Too Large</title>", body)
        status, _, body = self.app.post_json("/chat", None, raw=body_of(2048))
        self.assertEqual(status, 200, body)

    def test_default_model_system_prompt_and_one_turn_window(self):
        cid = "tight-window"
        _, _, b1 = self.app.post_json("/chat", {"message": "one", "conversation_id": cid})
        _, _, b2 = self.app.post_json("/chat", {"message": "two", "conversation_id": cid})
        before = self.recorder.count()
        status, _, b3 = self.app.post_json("/chat", {"message": "three", "conversation_id": cid})
        self.assertEqual(status, 200, b3)
        self.assertEqual(json.loads(b3)["model"], HAIKU)
        path, _, raw = self.recorder.since(before)[0]
        self.assertIn("anthropic.claude-3-haiku-20240307-v1%3A0", path)
        sent = json.loads(raw)
        self.assertEqual(sent["system"], "Be brief.")
        self.assertEqual(sent["messages"], [
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": json.loads(b2)["reply"]},
            {"role": "user", "content": "three"},
        ])


class TestClientGoesAway(unittest.TestCase):
    """A slow stream whose client hangs up after the first delta: nothing may be stored."""

    @classmethod
    def setUpClass(cls):
        cls.stub = harness.Stub(tps=20)
        cls.stub.start()
        cls.app = harness.Legacy(redis.url, cls.stub.url, workers=1)
        try:
            cls.app.start()
        except Exception:
            harness.stop_all(cls.app, cls.stub)
            raise

    @classmethod
    def tearDownClass(cls):
        harness.stop_all(cls.app, cls.stub)

    def test_abandoned_stream_is_not_stored(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=30)
        conn.request("POST", "/chat/stream", body=json.dumps({"message": "tell me a long story", "conversation_id": "gone-1"}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        first = resp.read(len(b"event: delta\n"))
        self.assertEqual(first, b"event: delta\n")
        resp.close()  # with Connection: close the response owns the socket
        conn.close()
        # One sync worker: this request is served only once the abandoned one has finished.
        status, _, body = self.app.request("GET", "/conversations/gone-1")
        self.assertEqual(status, 404, body)
        # The same request, read to the end, is stored (so the 404 above is not an accident).
        status, _, body = self.app.post_json("/chat/stream", {"message": "tell me a long story", "conversation_id": "gone-2"})
        self.assertEqual(parse_sse(body)[-1][0], "done")
        status, _, _ = self.app.request("GET", "/conversations/gone-2")
        self.assertEqual(status, 200)


class TestRedisDown(unittest.TestCase):
    """Its own Redis, stopped and restarted on the same port while the app runs."""

    @classmethod
    def setUpClass(cls):
        cls.redis = harness.Redis()
        cls.redis.start()
        cls.recorder = harness.Recorder(stub.port, before_forward=cls.before_forward)
        cls.recorder.start()
        cls.app = harness.Legacy(cls.redis.url, cls.recorder.url, workers=1)
        try:
            cls.app.start()
        except Exception:
            harness.stop_all(cls.app, cls.recorder, cls.redis)
            raise

    @classmethod
    def tearDownClass(cls):
        harness.stop_all(cls.app, cls.recorder, cls.redis)

    @classmethod
    def before_forward(cls, path, body):
        # Redis dies while Bedrock is answering: after history was read, before the turns are written.
        if b"[[test:stop-redis]]" in body:
            cls.redis.stop()

    def setUp(self):
        if not self.redis.alive():
            self.redis.start()

    def test_redis_stopped_is_503_everywhere_then_recovers(self):
        status, _, body = self.app.post_json("/chat", {"message": "hi", "conversation_id": "rd-1"})
        self.assertEqual(status, 200, body)

        self.redis.stop()
        before = self.recorder.count()
        for method, path, payload in [
            ("POST", "/chat", {"message": "hi", "conversation_id": "rd-1"}),
            ("POST", "/chat/stream", {"message": "hi", "conversation_id": "rd-1"}),
            ("GET", "/conversations/rd-1", None),
            ("DELETE", "/conversations/rd-1", None),
        ]:
            with self.subTest(method=method, path=path):
                if payload is None:
                    status, headers, body = self.app.request(method, path)
                else:
                    status, headers, body = self.app.post_json(path, payload)
                self.assertEqual(status, 503)
                self.assertEqual(header(headers, "Content-Type"), ["application/json"])
                self.assertEqual(body, STORE_DOWN)
        self.assertEqual(self.recorder.count(), before, "Bedrock must not be called without history")

        # A new session still gets its cookie on the error response (Flask saves the session anyway).
        status, headers, body = self.app.post_json("/chat", {"message": "hi"})
        self.assertEqual(status, 503)
        self.assertIsNotNone(session_cookie(headers))

        self.redis.start()
        status, _, body = self.app.post_json("/chat", {"message": "hi again", "conversation_id": "rd-2"})
        self.assertEqual(status, 200, body)
        status, _, body = self.app.request("GET", "/conversations/rd-2")
        self.assertEqual(status, 200, body)

    def test_redis_lost_after_bedrock_answered_is_503(self):
        before = self.recorder.count()
        status, _, body = self.app.post_json("/chat", {"message": "[[test:stop-redis]]", "conversation_id": "rd-3"})
        self.assertEqual(status, 503)
        self.assertEqual(body, STORE_DOWN)
        self.assertEqual(self.recorder.count() - before, 1, "Bedrock answered before the write failed")

    def test_redis_lost_during_stream_ends_with_error_event(self):
        status, headers, body = self.app.post_json(
            "/chat/stream", {"message": "[[test:stop-redis]]", "conversation_id": "rd-4"})
        self.assertEqual(status, 200)
        events = parse_sse(body)
        self.assertGreater(len(events), 1)
        self.assertEqual({e for e, _ in events[:-1]}, {"delta"})
        self.assertEqual(events[-1], ("error", {"error": "conversation store unavailable", "code": "store_unavailable"}))


if __name__ == "__main__":
    unittest.main()
