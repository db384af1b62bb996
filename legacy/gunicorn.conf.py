"""gunicorn settings for the chatbot API (sync workers, as in production).

Env: BIND (default 0.0.0.0:8000), GUNICORN_WORKERS (default 2 * cores + 1),
GUNICORN_TIMEOUT (default 300 s: a sync worker that holds one request longer is
killed, and a long streamed answer with retries can take minutes).
"""

import multiprocessing
import os
import sys

bind = os.environ.get("BIND") or "0.0.0.0:8000"
workers = int(os.environ.get("GUNICORN_WORKERS") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 300)
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL") or "info"

# Determinism hooks for tests; never loaded unless asked for.
if os.environ.get("CUTOVER_TEST_CLOCK") or os.environ.get("CUTOVER_TEST_IDS"):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import testhooks

    post_worker_init = testhooks.post_worker_init
