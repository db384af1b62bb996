"""Real processes for the legacy app's tests: redis-server, the Bedrock stub, gunicorn.

Every process listens on a free 127.0.0.1 port, runs in its own process group and is
stopped by its pid (group) on teardown. A Recorder sits between the app and the stub
when a test needs to see exactly what the app sent to Bedrock.
"""

import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LEGACY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(LEGACY_DIR)
PYDEPS = os.path.join(REPO_DIR, ".pydeps")

SECRET_KEY = "legacy-test-secret"

if PYDEPS not in sys.path:
    sys.path.append(PYDEPS)  # redis-py for the tests' own Redis checks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last})")


class Process:
    """A child process in its own process group, with its output kept in a temp file."""

    def __init__(self, name, args, env=None, cwd=None):
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.log = None

    def start(self):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def output(self):
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        # Workers left behind by a killed master would still be in the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


class Redis(Process):
    def __init__(self, port=None):
        self.port = port or free_port()
        super().__init__("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ])

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        super().start()
        wait_until(self._ping, 10, f"redis on port {self.port}")

    def _ping(self):
        if not self.alive():
            raise RuntimeError(f"redis-server exited:\n{self.output()}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)


class Stub(Process):
    """The Bedrock stub binary; tps > 0 paces generation (tokens per second)."""

    def __init__(self, tps=0):
        binary = os.environ.get("BEDROCK_STUB_BIN") or os.path.join(REPO_DIR, "bin", "bedrock-stub")
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"bedrock stub binary {binary} not found: run `make build` or set BEDROCK_STUB_BIN")
        self.port = free_port()
        super().__init__("bedrock-stub", [binary, "-addr", f"127.0.0.1:{self.port}", "-ttft", "0", "-tps", str(tps)])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        super().start()
        wait_until(lambda: "bedrock-stub listening on" in self._alive_output(), 10, "the bedrock stub")

    def _alive_output(self):
        if not self.alive():
            raise RuntimeError(f"bedrock-stub exited:\n{self.output()}")
        return self.output()


class Legacy(Process):
    """The app under real gunicorn, configured by env on top of a clean base."""

    def __init__(self, redis_url, bedrock_url, workers=2, **env):
        self.port = free_port()
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": PYDEPS,
            "BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "REDIS_URL": redis_url,
            "BEDROCK_ENDPOINT_URL": bedrock_url,
            "SECRET_KEY": SECRET_KEY,
            "AWS_ACCESS_KEY_ID": "AKIDLEGACYTEST",
            "AWS_SECRET_ACCESS_KEY": "legacy-test-secret-key",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        base.update({k: str(v) for k, v in env.items()})
        super().__init__("gunicorn", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
                         env=base, cwd=LEGACY_DIR)

    def start(self):
        super().start()
        wait_until(self._healthy, 30, "gunicorn /health")

    def _healthy(self):
        if not self.alive():
            raise RuntimeError(f"gunicorn exited:\n{self.output()}")
        status, _, _ = self.request("GET", "/health", timeout=2)
        return status == 200

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One HTTP request; returns (status, headers as a list of pairs, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def post_json(self, path, payload, cookie=None, raw=None):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if cookie:
            headers["Cookie"] = cookie
        return self.request("POST", path, body=body, headers=headers)


def header(headers, name):
    """The values of header name (case-insensitive) in a list of pairs."""
    return [v for k, v in headers if k.lower() == name.lower()]


def session_cookie(headers):
    """The session cookie pair ("session=...") from a response, or None."""
    for value in header(headers, "Set-Cookie"):
        if value.startswith("session="):
            return value.split(";", 1)[0]
    return None


def parse_sse(body):
    """Split a text/event-stream body into (event, data) pairs; data decoded from JSON."""
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-40:]!r}"
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        events.append((lines[0][len("event: "):], json.loads(lines[1][len("data: "):])))
    return events


class Recorder:
    """An HTTP forwarder between the app and the stub that keeps every request it saw.

    before_forward(path, body), if set, runs before each request is forwarded.
    """

    def __init__(self, upstream_port, before_forward=None):
        self.upstream_port = upstream_port
        self.before_forward = before_forward
        self.requests = []  # (path, headers dict lower-cased, body bytes)
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # close-delimited answers: simple and streamable

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                with recorder.lock:
                    recorder.requests.append((self.path, hdrs, body))
                if recorder.before_forward is not None:
                    recorder.before_forward(self.path, body)
                conn = http.client.HTTPConnection("127.0.0.1", recorder.upstream_port, timeout=120)
                try:
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request("POST", self.path, body=body, headers=fwd)
                    resp = conn.getresponse()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "date", "server"):
                            self.send_header(k, v)
                    self.end_headers()
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (OSError, http.client.HTTPException):
                    pass  # the stub or the app went away: nothing more to relay
                finally:
                    conn.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def count(self):
        with self.lock:
            return len(self.requests)

    def since(self, n):
        with self.lock:
            return list(self.requests[n:])


def stop_all(*procs):
    for p in procs:
        if p is not None:
            try:
                p.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"stopping {getattr(p, 'name', p)}: {exc}", file=sys.stderr)
