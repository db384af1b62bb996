"""Flask app whose responses gen_vectors.py records through a real gunicorn.

The Go tests (compat/vectors_test.go) port every view with the compat API and
must reproduce each recorded response byte for byte. Settings: SECRET_KEY
'test-secret', MAX_CONTENT_LENGTH 1024, clock frozen at VECTOR_CLOCK (unix
seconds) for session timestamps and expiry.
"""

import datetime as _dt
import json
import os
import uuid

import itsdangerous.timed
from flask import Flask, abort, jsonify, request, session
from markupsafe import Markup
from werkzeug.exceptions import MethodNotAllowed

CLOCK = int(os.environ.get("VECTOR_CLOCK", "1700000000"))

# Freeze both clocks Flask's sessions read: the itsdangerous timestamp and
# datetime.now() used for the permanent cookie's Expires.
itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: CLOCK


class _FrozenDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(CLOCK, tz or _dt.timezone.utc)


import flask.sessions  # noqa: E402

flask.sessions.datetime = _FrozenDatetime

# root_path without a static folder: /static/... answers 404 like the legacy app.
app = Flask(__name__, root_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "no-such-dir"))
_max = os.environ.get("VECTOR_MAX_CONTENT_LENGTH", "1024")
app.config.update(SECRET_KEY="test-secret", MAX_CONTENT_LENGTH=None if _max == "none" else int(_max))


def _describe(v):
    return [type(v).__name__, str(v)]


def _echo(**kwargs):
    return jsonify(
        endpoint=request.endpoint,
        method=request.method,
        args={k: _describe(v) for k, v in kwargs.items()},
    )


def route(rule, endpoint, **options):
    def view(**kwargs):
        return _echo(**kwargs)

    app.add_url_rule(rule, endpoint, view, **options)


# --- routing sample ---
route("/health", "health")
route("/chat/", "chat")
route("/api/conversations", "conversations", methods=["GET", "POST"])
route("/api/conversations/<conversation_id>", "conversation", methods=["GET", "DELETE", "PUT"])
route("/api/items/<int:item_id>", "item")
route("/api/signed/<int(signed=True):n>", "signed")
route("/api/fixed/<int(fixed_digits=3):n>", "fixed")
route("/api/range/<int(min=1, max=10):n>", "range")
route("/api/floats/<float:x>", "floats")
route("/files/<path:subpath>", "files")
route("/files/<path:subpath>/edit", "files_edit", methods=["POST"])
route("/dirs/<path:p>/", "dirs")
route("/u/<uuid:uid>", "by_uuid")
route("/lang/<string(length=2):code>", "lang")
route("/lang/<string(minlength=3,maxlength=5):code>/x", "lang_x")
route('/any/<any(a, b, "c d"):kind>', "any_kind")
route("/post-only", "post_only", methods=["POST"])
route("/items/static", "items_static")
route("/items/<name>", "items_name")
route("/items/<int:n>", "items_int")
route("/a/<x>/b", "a_x_b")
route("/a/c/<y>", "a_c_y")
route("/nonstrict/", "nonstrict", strict_slashes=False)
route("/nonstrict2", "nonstrict2", strict_slashes=False)
route("/multi/<a>/<int:b>/<path:c>", "multi")


@app.route("/opts", methods=["GET", "OPTIONS"])
def opts():
    # Explicit OPTIONS: no automatic answer; the view handles it.
    return jsonify(endpoint="opts", method=request.method)


# --- request.get_json() ---
@app.route("/json", methods=["POST", "PUT"])
def json_echo():
    data = request.get_json()
    return jsonify(data)


@app.route("/json-type", methods=["POST"])
def json_type():
    # Decodes without re-encoding (deeply nested input is only decoded).
    return jsonify(type=type(request.get_json()).__name__)


@app.route("/json-deep/<int:n>")
def json_deep(n):
    # jsonify of n nested lists: the encoder's recursion limit in a view.
    v = []
    for _ in range(n - 1):
        v = [v]
    return jsonify(v)


@app.route("/json-dumps", methods=["POST"])
def json_dumps():
    # Python's default json.dumps of what get_json decoded (insertion order).
    data = request.get_json()
    return app.response_class(json.dumps(data), mimetype="text/plain")


@app.route("/status/<int:code>")
def status(code):
    return jsonify(a=1), code


# --- error pages ---
@app.route("/abort/<int:code>")
def abort_code(code):
    abort(code)


@app.route("/abort-desc")
def abort_desc():
    abort(400, description="Missing 'message' <field>\n& \"more\"")


@app.route("/abort405")
def abort_405():
    raise MethodNotAllowed(valid_methods=["GET", "POST"])


@app.route("/error")
def error():
    return 1 // 0


# --- sessions ---
@app.route("/s/set")
def s_set():
    session["conversation_id"] = "abc"
    return jsonify(ok=True)


@app.route("/s/read")
def s_read():
    return jsonify(conversation_id=session.get("conversation_id"))


@app.route("/s/nontouch")
def s_nontouch():
    return jsonify(touched=False)


@app.route("/s/permanent")
def s_permanent():
    session.permanent = True
    session["conversation_id"] = "abc"
    return jsonify(ok=True)


@app.route("/s/unpermanent")
def s_unpermanent():
    session.permanent = False
    return jsonify(ok=True)


@app.route("/s/clear")
def s_clear():
    session.clear()
    return jsonify(cleared=True)


@app.route("/s/pop")
def s_pop():
    session.pop("missing", None)
    return jsonify(popped=True)


@app.route("/s/pop-present")
def s_pop_present():
    v = session.pop("conversation_id", None)
    return jsonify(popped=v)


@app.route("/s/rich")
def s_rich():
    session["history"] = [{"role": "user", "content": "h\u00e9llo \U0001F600 <&>"}] * 3
    session["t"] = (1, 2.5, "x")
    session["when"] = _dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)
    session["raw"] = b"\x00\xffbytes"
    session["markup"] = Markup("<b>hi</b>")
    session["id"] = uuid.UUID("12345678-1234-5678-1234-567812345678")
    session["tagkey"] = {" t": [1]}
    session["n"] = {"big": 2**70, "neg": -1, "f": 1e-7}
    return jsonify(ok=True)


@app.route("/s/big")
def s_big():
    session["history"] = [{"role": "user", "content": "message number %d" % i} for i in range(40)]
    return jsonify(ok=True)
