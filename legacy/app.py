"""Chatbot API: Flask in front of Anthropic Claude on AWS Bedrock, history in Redis.

Run in production with gunicorn (see gunicorn.conf.py):

    gunicorn -c gunicorn.conf.py app:app
"""

import json
import logging
import os
import re
import uuid
from datetime import datetime, timezone

import boto3
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, jsonify, request, session

log = logging.getLogger(__name__)


def _env_int(name, default):
    return int(os.environ.get(name) or default)


def _env_float(name, default):
    return float(os.environ.get(name) or default)


# --- configuration ----------------------------------------------------------

BEDROCK_ENDPOINT_URL = os.environ.get("BEDROCK_ENDPOINT_URL") or None  # None = real AWS
AWS_REGION = os.environ.get("AWS_REGION") or "us-east-1"
BEDROCK_MODEL_ID = os.environ.get("BEDROCK_MODEL_ID") or "anthropic.claude-3-5-sonnet-20240620-v1:0"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-secret-change-me"
SYSTEM_PROMPT = os.environ.get("SYSTEM_PROMPT") or (
    "You are a helpful, concise assistant. Answer clearly and accurately. "
    "If you do not know something, say so instead of guessing."
)
MAX_MESSAGE_CHARS = _env_int("MAX_MESSAGE_CHARS", 4000)
HISTORY_TURNS = _env_int("HISTORY_TURNS", 10)
MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
BEDROCK_TIMEOUT = _env_float("BEDROCK_TIMEOUT", 60)
BEDROCK_MAX_ATTEMPTS = _env_int("BEDROCK_MAX_ATTEMPTS", 3)

ANTHROPIC_VERSION = "bedrock-2023-05-31"
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TEMPERATURE = 0.7
MAX_TOKENS_LIMIT = 4096
RETRY_AFTER_SECONDS = "1"

# Models callers may pick, with the largest max_tokens we allow for each.
# Opus is capped below its real limit to bound the cost of one request.
MODELS = {
    "anthropic.claude-3-5-sonnet-20240620-v1:0": 4096,
    "anthropic.claude-3-5-haiku-20241022-v1:0": 4096,
    "anthropic.claude-3-haiku-20240307-v1:0": 4096,
    "anthropic.claude-3-opus-20240229-v1:0": 2048,
}
if BEDROCK_MODEL_ID not in MODELS:
    raise RuntimeError(f"BEDROCK_MODEL_ID {BEDROCK_MODEL_ID!r} is not one of {sorted(MODELS)}")

CONVERSATION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

if not os.environ.get("SECRET_KEY"):
    log.warning("SECRET_KEY is not set: using the built-in development key")

# --- clients (one of each per process) ---------------------------------------

bedrock = boto3.client(
    "bedrock-runtime",
    region_name=AWS_REGION,
    endpoint_url=BEDROCK_ENDPOINT_URL,
    config=Config(
        connect_timeout=5,
        read_timeout=BEDROCK_TIMEOUT,
        retries={"total_max_attempts": BEDROCK_MAX_ATTEMPTS, "mode": "standard"},
    ),
)

store = redis.Redis.from_url(
    REDIS_URL,
    socket_connect_timeout=2,
    socket_timeout=5,
    health_check_interval=30,
    decode_responses=True,
)

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

app = Flask(__name__)
app.config["SECRET_KEY"] = SECRET_KEY
app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH


# --- small seams (clock and ids) ---------------------------------------------


def utcnow():
    return datetime.now(timezone.utc)


def new_conversation_id():
    return str(uuid.uuid4())


# --- helpers -----------------------------------------------------------------


class ValidationError(Exception):
    pass


def error(message, code, status):
    return jsonify(error=message, code=code), status


def throttled():
    resp, status = error("the model is busy, please retry shortly", "throttled", 429)
    resp.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return resp, status


def bedrock_failed():
    return error("the model could not answer, please retry", "bedrock_error", 502)


def conversation_key(conversation_id):
    return f"conversation:{conversation_id}"


def is_number(value):
    # bool is an int subclass in Python; true/false are not numbers here.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_chat_request(data):
    """Validate a /chat body; rules are checked in this order, first failure wins.

    A key whose value is JSON null counts as absent.
    """
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")

    message = data.get("message")
    if message is None:
        raise ValidationError("message is required")
    if not isinstance(message, str):
        raise ValidationError("message must be a string")
    if not message.strip():
        raise ValidationError("message must not be blank")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValidationError(f"message must be at most {MAX_MESSAGE_CHARS} characters")

    conversation_id = data.get("conversation_id")
    if conversation_id is not None:
        if not isinstance(conversation_id, str):
            raise ValidationError("conversation_id must be a string")
        if not CONVERSATION_ID_RE.fullmatch(conversation_id):
            raise ValidationError(
                "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"
            )

    model = data.get("model")
    if model is None:
        model = BEDROCK_MODEL_ID
    elif not isinstance(model, str) or model not in MODELS:
        raise ValidationError("model must be one of: " + ", ".join(MODELS))

    temperature = data.get("temperature")
    if temperature is None:
        temperature = DEFAULT_TEMPERATURE
    else:
        if not is_number(temperature):
            raise ValidationError("temperature must be a number")
        if not 0 <= temperature <= 1:
            raise ValidationError("temperature must be between 0 and 1")

    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    else:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise ValidationError("max_tokens must be an integer")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise ValidationError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        if max_tokens > MODELS[model]:
            raise ValidationError(f"max_tokens must be at most {MODELS[model]} for model {model}")

    return {
        "message": message,
        "conversation_id": conversation_id,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }


def resolve_conversation_id(requested):
    if requested is not None:
        return requested
    conversation_id = session.get("conversation_id")
    if conversation_id is None:
        conversation_id = new_conversation_id()
        session["conversation_id"] = conversation_id
    return conversation_id


def load_history(conversation_id):
    if HISTORY_TURNS <= 0:
        return []
    items = store.lrange(conversation_key(conversation_id), -2 * HISTORY_TURNS, -1)
    messages = []
    for item in items:
        turn = json.loads(item)
        messages.append({"role": turn["role"], "content": turn["content"]})
    return messages


def save_turns(conversation_id, user_text, assistant_text):
    now = utcnow().isoformat()
    user = json.dumps({"role": "user", "content": user_text, "created_at": now})
    assistant = json.dumps({"role": "assistant", "content": assistant_text, "created_at": now})
    # One RPUSH for both turns: the history never holds a question without its answer.
    store.rpush(conversation_key(conversation_id), user, assistant)


def bedrock_body(req, history):
    return json.dumps(
        {
            "anthropic_version": ANTHROPIC_VERSION,
            "system": SYSTEM_PROMPT,
            "messages": history + [{"role": "user", "content": req["message"]}],
            "max_tokens": req["max_tokens"],
            "temperature": req["temperature"],
        }
    )


def is_throttling(exc):
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ThrottlingException"


def sse(event, payload):
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n"


# --- error handlers ----------------------------------------------------------


@app.errorhandler(redis.exceptions.ConnectionError)
@app.errorhandler(redis.exceptions.TimeoutError)
def store_unavailable(exc):
    log.error("redis unavailable: %s", exc)
    return error("conversation store unavailable", "store_unavailable", 503)


# --- routes ------------------------------------------------------------------


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/models")
def models():
    return {
        "default": BEDROCK_MODEL_ID,
        "models": [{"id": model_id, "max_tokens": limit} for model_id, limit in MODELS.items()],
    }


@app.post("/chat")
def chat():
    try:
        req = parse_chat_request(request.get_json())
    except ValidationError as exc:
        return error(str(exc), "validation_error", 400)

    conversation_id = resolve_conversation_id(req["conversation_id"])
    history = load_history(conversation_id)

    try:
        response = bedrock.invoke_model(
            modelId=req["model"],
            body=bedrock_body(req, history),
            contentType="application/json",
            accept="application/json",
        )
        result = json.loads(response["body"].read())
        reply = "".join(block["text"] for block in result["content"] if block.get("type") == "text")
        stop_reason = result.get("stop_reason")
        usage = {
            "input_tokens": result["usage"]["input_tokens"],
            "output_tokens": result["usage"]["output_tokens"],
        }
    except (ClientError, BotoCoreError) as exc:
        if is_throttling(exc):
            log.warning("bedrock throttled: %s", exc)
            return throttled()
        log.error("bedrock invoke_model failed: %s", exc)
        return bedrock_failed()
    except (ValueError, KeyError, TypeError) as exc:
        log.error("bedrock returned an unexpected body: %r", exc)
        return bedrock_failed()

    # If Redis fails here the store_unavailable handler answers 503 and the reply is
    # dropped: a 200 would promise a conversation the next turn cannot continue.
    save_turns(conversation_id, req["message"], reply)

    return jsonify(
        conversation_id=conversation_id,
        reply=reply,
        model=req["model"],
        stop_reason=stop_reason,
        usage=usage,
    )


@app.post("/chat/stream")
def chat_stream():
    try:
        req = parse_chat_request(request.get_json())
    except ValidationError as exc:
        return error(str(exc), "validation_error", 400)

    conversation_id = resolve_conversation_id(req["conversation_id"])
    history = load_history(conversation_id)

    try:
        response = bedrock.invoke_model_with_response_stream(
            modelId=req["model"],
            body=bedrock_body(req, history),
            contentType="application/json",
            accept="application/json",
        )
    except (ClientError, BotoCoreError) as exc:
        if is_throttling(exc):
            log.warning("bedrock throttled: %s", exc)
            return throttled()
        log.error("bedrock invoke_model_with_response_stream failed: %s", exc)
        return bedrock_failed()

    stream = response["body"]
    message = req["message"]

    def generate():
        parts = []
        usage = {"input_tokens": 0, "output_tokens": 0}
        stop_reason = None
        try:
            for event in stream:
                chunk = event.get("chunk")
                if chunk is None:
                    continue
                data = json.loads(chunk["bytes"])
                kind = data.get("type")
                if kind == "message_start":
                    usage["input_tokens"] = data["message"]["usage"]["input_tokens"]
                elif kind == "content_block_delta" and data["delta"].get("type") == "text_delta":
                    text = data["delta"]["text"]
                    parts.append(text)
                    yield sse("delta", {"text": text})
                elif kind == "message_delta":
                    stop_reason = data["delta"].get("stop_reason")
                    usage["output_tokens"] = data["usage"]["output_tokens"]
        except Exception as exc:  # the response has started: report in-band
            log.error("bedrock stream failed: %r", exc)
            yield sse("error", {"error": "the model stream failed", "code": "bedrock_error"})
            return
        finally:
            stream.close()

        try:
            save_turns(conversation_id, message, "".join(parts))
        except REDIS_DOWN as exc:
            log.error("redis unavailable after stream: %s", exc)
            yield sse("error", {"error": "conversation store unavailable", "code": "store_unavailable"})
            return

        yield sse("done", {"conversation_id": conversation_id, "usage": usage, "stop_reason": stop_reason})

    return Response(generate(), mimetype="text/event-stream")


@app.get("/conversations/<conversation_id>")
def get_conversation(conversation_id):
    items = store.lrange(conversation_key(conversation_id), 0, -1)
    if not items:
        return error("conversation not found", "not_found", 404)
    messages = []
    for item in items:
        turn = json.loads(item)
        messages.append({"role": turn["role"], "content": turn["content"], "created_at": turn["created_at"]})
    return jsonify(conversation_id=conversation_id, messages=messages)


@app.delete("/conversations/<conversation_id>")
def delete_conversation(conversation_id):
    if not store.delete(conversation_key(conversation_id)):
        return error("conversation not found", "not_found", 404)
    return "", 204
