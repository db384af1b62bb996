"""Determinism hooks for tests, installed in each gunicorn worker by gunicorn.conf.py.

Off unless enabled by env (the production app never imports this module):

CUTOVER_TEST_CLOCK=<unix seconds, float>
    Freezes the clock: app.utcnow() (the created_at of stored turns), the
    timestamp itsdangerous puts in the session cookie (int() of the value) and
    the clock flask.sessions reads for a permanent session's Expires.
CUTOVER_TEST_IDS=1
    A new conversation id is derived from the request body:
    str(uuid.UUID(bytes=sha256(body).digest()[:16], version=4)).
"""

import hashlib
import os
import sys
import uuid
from datetime import datetime, timezone


def frozen_clock(seconds):
    def utcnow():
        return datetime.fromtimestamp(seconds, timezone.utc)

    def get_timestamp(self):
        return int(seconds)

    return utcnow, get_timestamp


def frozen_datetime(seconds):
    """A datetime class whose now() is the frozen clock, for flask.sessions
    (get_expiration_time calls datetime.now(timezone.utc))."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(seconds, tz or timezone.utc)

    return FrozenDatetime


def body_conversation_id():
    from flask import request

    digest = hashlib.sha256(request.get_data()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def install(app_module):
    """Patch app_module (the loaded app.py) according to the environment."""
    clock = os.environ.get("CUTOVER_TEST_CLOCK")
    if clock:
        import flask.sessions
        from itsdangerous.timed import TimestampSigner

        utcnow, get_timestamp = frozen_clock(float(clock))
        app_module.utcnow = utcnow
        TimestampSigner.get_timestamp = get_timestamp
        flask.sessions.datetime = frozen_datetime(float(clock))
    if os.environ.get("CUTOVER_TEST_IDS") == "1":
        app_module.new_conversation_id = body_conversation_id


def post_worker_init(worker):
    install(sys.modules["app"])
    worker.log.info("testhooks installed (clock=%s ids=%s)",
                    os.environ.get("CUTOVER_TEST_CLOCK"), os.environ.get("CUTOVER_TEST_IDS"))
