"""boto3 against bedrock-stub: every operation and every fault, through the real botocore wire code.

Run by TestBoto3 (boto3_test.go), which starts the stub and sets:
  STUB_URL      base URL of the stub
  STUB_RESULTS  file to write the cross-SDK results to (compared with the Go SDK's by the Go test)
and isolates AWS configuration through the environment.
TestBoto3ServerFault runs only the ServerFault class, with
  STUB_SERVER_FAULTS  {"fault name": base URL of a stub started with that server-wide fault (-fault)}
"""

import base64
import contextlib
import json
import os
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError, ReadTimeoutError

URL = os.environ.get("STUB_URL", "")
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
RICH = ["é", "ü", "日本語", "🚀", '"', "<", ">", "&", "\n"]
FAULTS = {
    # fault: (error code, HTTP status) for every operation (stream-error: non-streaming ones only)
    "throttle": ("ThrottlingException", 429),
    "unavailable": ("ServiceUnavailableException", 503),
    "model-timeout": ("ModelTimeoutException", 408),
    "validation": ("ValidationException", 400),
    "stream-error": ("ModelErrorException", 424),
}


_clients = []


def client(url=None, **cfg):
    c = boto3.client(
        "bedrock-runtime",
        endpoint_url=url or URL,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, **cfg),
    )
    _clients.append(c)
    return c


def tearDownModule():
    for c in _clients:
        c.close()


def anthropic_body(text, **extra):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "system": "You are a stub.",
        "messages": [{"role": "user", "content": text}],
    }
    body.update(extra)
    return json.dumps(body)


def converse_args(text, max_tokens=512, model=MODEL):
    return dict(
        modelId=model,
        system=[{"text": "You are a stub."}],
        messages=[{"role": "user", "content": [{"text": text}]}],
        inferenceConfig={"maxTokens": max_tokens, "temperature": 0.5},
    )


def invoke(c, body, model=MODEL):
    r = c.invoke_model(modelId=model, body=body, contentType="application/json")
    return r, json.loads(r["body"].read())


def invoke_stream(c, body, model=MODEL):
    """Returns (events, text); raises what the stream raises."""
    r = c.invoke_model_with_response_stream(modelId=model, body=body, contentType="application/json")
    events, text = [], []
    with contextlib.closing(r["body"]) as stream:
        for ev in stream:
            e = json.loads(ev["chunk"]["bytes"])
            events.append(e)
            if e["type"] == "content_block_delta":
                text.append(e["delta"]["text"])
    return events, "".join(text)


def converse_stream(c, **args):
    r = c.converse_stream(**args)
    kinds, text, stop, meta = [], [], None, None
    with contextlib.closing(r["stream"]) as stream:
        for ev in stream:
            (kind, value), = ev.items()
            kinds.append(kind)
            if kind == "contentBlockDelta":
                text.append(value["delta"]["text"])
            elif kind == "messageStop":
                stop = value["stopReason"]
            elif kind == "metadata":
                meta = value
    return kinds, "".join(text), stop, meta


class Operations(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def assertRich(self, text):
        for want in RICH:
            self.assertIn(want, text)

    def test_invoke_model_and_stream_agree(self):
        body = anthropic_body("Bonjour, ça va? 日本語 <b>&</b>", temperature=0.7)
        r, m = invoke(self.c, body)
        self.assertEqual(r["contentType"], "application/json")
        self.assertEqual(
            (m["type"], m["role"], m["model"], m["stop_reason"], m["stop_sequence"]),
            ("message", "assistant", "claude-3-5-sonnet-20240620", "end_turn", None),
        )
        self.assertTrue(m["id"].startswith("msg_bdrk_"))
        self.assertEqual([c["type"] for c in m["content"]], ["text"])
        text = m["content"][0]["text"]
        self.assertRich(text)
        u = m["usage"]
        self.assertGreater(u["input_tokens"], 0)
        self.assertTrue(8 <= u["output_tokens"] <= 40, u)
        h = r["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(h["x-amzn-bedrock-input-token-count"], str(u["input_tokens"]))
        self.assertEqual(h["x-amzn-bedrock-output-token-count"], str(u["output_tokens"]))
        self.assertEqual(h["x-amzn-bedrock-invocation-latency"], "0")
        self.assertEqual(len(r["ResponseMetadata"]["RequestId"]), 36)

        events, streamed = invoke_stream(self.c, body)
        self.assertEqual(streamed, text)
        want = ["message_start", "content_block_start"] + ["content_block_delta"] * u["output_tokens"]
        want += ["content_block_stop", "message_delta", "message_stop"]
        self.assertEqual([e["type"] for e in events], want)
        self.assertEqual(events[0]["message"]["id"], m["id"])
        self.assertEqual(events[-2]["delta"]["stop_reason"], "end_turn")
        self.assertEqual(events[-2]["usage"]["output_tokens"], u["output_tokens"])
        metrics = events[-1]["amazon-bedrock-invocationMetrics"]
        self.assertEqual(metrics["inputTokenCount"], u["input_tokens"])
        self.assertEqual(metrics["outputTokenCount"], u["output_tokens"])

    def test_converse_and_stream_agree(self):
        arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
        args = converse_args("Grüß Gott 🚀", model=arn)
        r = self.c.converse(**args)
        self.assertEqual(r["output"]["message"]["role"], "assistant")
        text = "".join(b["text"] for b in r["output"]["message"]["content"])
        self.assertRich(text)
        self.assertEqual(r["stopReason"], "end_turn")
        u = r["usage"]
        self.assertEqual(u["totalTokens"], u["inputTokens"] + u["outputTokens"])
        self.assertEqual(r["metrics"], {"latencyMs": 0})

        kinds, streamed, stop, meta = converse_stream(self.c, **args)
        self.assertEqual(streamed, text)
        want = ["messageStart"] + ["contentBlockDelta"] * u["outputTokens"]
        want += ["contentBlockStop", "messageStop", "metadata"]
        self.assertEqual(kinds, want)
        self.assertEqual(stop, "end_turn")
        self.assertEqual(meta["usage"], u)

        other = self.c.converse(**converse_args("Grüß Gott 🚀"))
        self.assertNotEqual(other["output"]["message"]["content"][0]["text"], text)

    def test_max_tokens(self):
        body = anthropic_body("hi", max_tokens=3)
        _, m = invoke(self.c, body)
        self.assertEqual((m["stop_reason"], m["usage"]["output_tokens"]), ("max_tokens", 3))
        events, streamed = invoke_stream(self.c, body)
        self.assertEqual(streamed, m["content"][0]["text"])
        self.assertEqual(events[-2]["delta"]["stop_reason"], "max_tokens")
        r = self.c.converse(**converse_args("hi", max_tokens=2))
        self.assertEqual((r["stopReason"], r["usage"]["outputTokens"]), ("max_tokens", 2))
        _, streamed, stop, _ = converse_stream(self.c, **converse_args("hi", max_tokens=2))
        self.assertEqual((streamed, stop), (r["output"]["message"]["content"][0]["text"], "max_tokens"))

    def test_validation(self):
        bodies = {
            "extraneous key [model] is not permitted": anthropic_body("hi", model="x"),
            "required key [max_tokens] not found": json.dumps(
                {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]}),
            "expected type: Integer": anthropic_body("hi", max_tokens=5.0),
            "Malformed input request": "{not json",
        }
        for want, body in bodies.items():
            for call in (self.c.invoke_model, self.c.invoke_model_with_response_stream):
                with self.subTest(want=want, op=call.__name__):
                    with self.assertRaises(ClientError) as cm:
                        call(modelId=MODEL, body=body)
                    err = cm.exception.response["Error"]
                    self.assertEqual(err["Code"], "ValidationException")
                    self.assertIn(want, err["Message"])
                    self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)


def all_ops(c, text):
    """Calls every operation with text in the prompt; returns [(op, exception or None, deltas before it)]."""
    out = []
    body = anthropic_body(text, max_tokens=100)
    for op, call in (
        ("InvokeModel", lambda: invoke(c, body)),
        ("Converse", lambda: c.converse(**converse_args(text, 100))),
    ):
        try:
            call()
            out.append((op, None, 0))
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out.append((op, e, 0))
    for op, start, key, is_delta in (
        ("InvokeModelWithResponseStream",
         lambda: c.invoke_model_with_response_stream(modelId=MODEL, body=body), "body",
         lambda ev: json.loads(ev["chunk"]["bytes"])["type"] == "content_block_delta"),
        ("ConverseStream",
         lambda: c.converse_stream(**converse_args(text, 100)), "stream",
         lambda ev: "contentBlockDelta" in ev),
    ):
        deltas, stream = 0, None
        try:
            stream = start()[key]
            for ev in stream:
                deltas += is_delta(ev)
            out.append((op, None, deltas))
        except Exception as e:  # noqa: BLE001
            out.append((op, e, deltas))
        finally:
            if stream is not None:
                stream.close()
    return out


def check_fault(tc, fault, results):
    """Asserts that every operation in results failed as fault makes it fail."""
    code, status = FAULTS[fault]
    for op, exc, deltas in results:
        with tc.subTest(fault=fault, op=op):
            if fault == "stream-error" and op.endswith("Stream"):
                tc.assertIsInstance(exc, EventStreamError)
                tc.assertEqual(exc.response["Error"]["Code"], "modelStreamErrorException")
                tc.assertEqual(deltas, 3)
                continue
            tc.assertIsInstance(exc, ClientError)
            tc.assertNotIsInstance(exc, EventStreamError)
            tc.assertEqual(exc.response["Error"]["Code"], code)
            tc.assertEqual(exc.response["ResponseMetadata"]["HTTPStatusCode"], status)


class Faults(unittest.TestCase):
    def check(self, fault, results):
        check_fault(self, fault, results)

    def test_marker(self):
        c = client()
        for fault in FAULTS:
            self.check(fault, all_ops(c, "please fail [[stub-fault:%s]] now" % fault))

    def test_header(self):
        for fault in FAULTS:
            c = client()

            def add_header(request, fault=fault, **kwargs):
                request.headers["X-Stub-Fault"] = fault

            c.meta.events.register("before-sign.bedrock-runtime.*", add_header)
            self.check(fault, all_ops(c, "hello"))

    def test_no_fault(self):
        for op, exc, _ in all_ops(client(), "hello"):
            self.assertIsNone(exc, op)

    def test_unknown_fault(self):
        for op, exc, _ in all_ops(client(), "[[stub-fault:explode]]"):
            with self.subTest(op=op):
                self.assertIsInstance(exc, ClientError)
                self.assertEqual(exc.response["Error"]["Code"], "ValidationException")
                self.assertIn('"explode"', exc.response["Error"]["Message"])

    def test_hang_times_out(self):
        c = client(read_timeout=0.3, connect_timeout=2)
        body = anthropic_body("wait [[stub-fault:hang]]")
        for call in (
            lambda: c.invoke_model(modelId=MODEL, body=body),
            lambda: c.invoke_model_with_response_stream(modelId=MODEL, body=body),
            lambda: c.converse(**converse_args("wait [[stub-fault:hang]]")),
            lambda: c.converse_stream(**converse_args("wait [[stub-fault:hang]]")),
        ):
            with self.assertRaises(ReadTimeoutError):
                call()


class Concurrency(unittest.TestCase):
    def test_16_streams_8_at_a_time(self):
        """16 streams on one client from 8 threads; the first 8 are all open at once (a barrier after
        their first event proves it), and every stream carries exactly its own reply."""
        c = client(max_pool_connections=8)
        barrier = threading.Barrier(8, timeout=60)

        def one(i):
            body = anthropic_body(f"stream {i}: ça 🚀 <&>", max_tokens=40)
            r = c.invoke_model_with_response_stream(modelId=MODEL, body=body, contentType="application/json")
            events, text = [], []
            with contextlib.closing(r["body"]) as stream:
                for ev in stream:
                    events.append(json.loads(ev["chunk"]["bytes"]))
                    if len(events) == 1 and i < 8:
                        barrier.wait()
                    if events[-1]["type"] == "content_block_delta":
                        text.append(events[-1]["delta"]["text"])
            return body, events, "".join(text)

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(16)))
        texts = set()
        for body, events, text in results:
            _, m = invoke(c, body)  # the same request, not streamed, one at a time
            self.assertEqual(text, m["content"][0]["text"])
            self.assertEqual(events[0]["message"]["id"], m["id"])
            want = ["message_start", "content_block_start"] + ["content_block_delta"] * m["usage"]["output_tokens"]
            want += ["content_block_stop", "message_delta", "message_stop"]
            self.assertEqual([e["type"] for e in events], want)
            texts.add(text)
        self.assertEqual(len(texts), 16)


if os.environ.get("STUB_SERVER_FAULTS"):
    SERVER_FAULTS = json.loads(os.environ["STUB_SERVER_FAULTS"])

    class ServerFault(unittest.TestCase):
        """Stubs started with a server-wide fault (Options.Fault, the -fault flag)."""

        def test_every_operation_gets_it(self):
            for fault, url in SERVER_FAULTS.items():
                if fault == "hang":
                    c = client(url, read_timeout=0.3, connect_timeout=2)
                    for call in (
                        lambda: c.invoke_model(modelId=MODEL, body=anthropic_body("hello")),
                        lambda: c.invoke_model_with_response_stream(modelId=MODEL, body=anthropic_body("hello")),
                        lambda: c.converse(**converse_args("hello")),
                        lambda: c.converse_stream(**converse_args("hello")),
                    ):
                        with self.subTest(fault=fault), self.assertRaises(ReadTimeoutError):
                            call()
                    continue
                check_fault(self, fault, all_ops(client(url), "hello"))

        def test_header_none_opts_out(self):
            for fault, url in SERVER_FAULTS.items():
                c = client(url)
                c.meta.events.register("before-sign.bedrock-runtime.*",
                                       lambda request, **kwargs: request.headers.__setitem__("X-Stub-Fault", "none"))
                for op, exc, _ in all_ops(c, "hello"):
                    with self.subTest(fault=fault, op=op):
                        self.assertIsNone(exc)

        def test_marker_and_header_take_precedence(self):
            for fault, url in SERVER_FAULTS.items():
                other = "validation" if fault != "validation" else "throttle"
                with self.subTest(fault=fault, by="marker"):
                    check_fault(self, other, all_ops(client(url), "[[stub-fault:%s]]" % other))
                c = client(url)
                c.meta.events.register("before-sign.bedrock-runtime.*",
                                       lambda request, other=other, **kwargs: request.headers.__setitem__("X-Stub-Fault", other))
                with self.subTest(fault=fault, by="header"):
                    check_fault(self, other, all_ops(c, "hello"))


class CrossSDK(unittest.TestCase):
    """Replies to requests the Go test repeats with the Go SDK; it compares them byte for byte."""

    def test_write_results(self):
        c = client()
        # json.dumps escapes non-ASCII and separates with ", ": other bytes than Go's, same canonical form.
        body = json.dumps({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 300,
            "temperature": 0.5,
            "messages": [{"role": "user", "content": 'café <&> 🚀 "q"\nline'}],
        })
        r = c.invoke_model(modelId=MODEL, body=body)
        raw = r["body"].read()
        events, streamed = invoke_stream(c, body)
        conv = c.converse(**converse_args('café <&> 🚀 "q"\nline', 300))
        kinds, conv_streamed, _, _ = converse_stream(c, **converse_args('café <&> 🚀 "q"\nline', 300))
        results = {
            "invoke_body_b64": base64.b64encode(raw).decode(),
            "stream_text": streamed,
            "stream_events": events,
            "converse_text": conv["output"]["message"]["content"][0]["text"],
            "converse_stream_text": conv_streamed,
        }
        with open(os.environ["STUB_RESULTS"], "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    unittest.main(verbosity=2)
