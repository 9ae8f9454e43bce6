"""A small OpenAI-compatible HTTP server for tests: stdlib http.server in a thread on 127.0.0.1 (port 0).

It answers `POST /v1/chat/completions` and `GET /v1/models` with deterministic replies, counts the chat requests
it receives, records their bodies and Authorization headers, and can be scripted: fail the next n requests with a
status (500 then success), demand a key (401 otherwise), or reply slowly.

    with OpenAIServer(reply=lambda messages: "a, b, c") as server:
        ... base_url=server.base_url ...
        assert server.requests == 1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Messages = list[dict[str, Any]]


def question_of(messages: Messages) -> str:
    """The question inside the last user message (the text after 'Question:' up to the line end, else all)."""
    text = str(messages[-1].get("content", ""))
    for line in text.splitlines():
        if line.lower().startswith("question:"):
            return line.split(":", 1)[1].strip()
    return text.strip()


def default_reply(messages: Messages) -> str:
    """Deterministic: three keywords made from the question's words, as a small model might write them."""
    words = [w.strip("?.,").lower() for w in question_of(messages).split()]
    words = [w for w in words if len(w) > 3] or ["nothing"]
    return ", ".join(f"{w} keyword" for w in words[:3])


class OpenAIServer:
    """The server and its script; use as a context manager (starts on enter, stops on exit)."""

    def __init__(self, reply: Callable[[Messages], str] = default_reply, api_key: str | None = None,
                 delay: float = 0.0) -> None:
        self.reply = reply
        self.api_key = api_key  # when set, a request without `Authorization: Bearer <api_key>` gets a 401
        self.delay = delay  # seconds to wait before answering a chat request
        self.requests = 0  # chat requests received (including failed / scripted ones)
        self.bodies: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most chat requests being handled at one time
        self._fail: list[int] = []  # statuses to answer the next requests with, in order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------- script
    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` chat requests with `status` (then behave normally again)."""
        with self._lock:
            self._fail.extend([status] * times)

    # ---------------------------------------------------------------------------------------------- running
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.requests += 1
                    server.bodies.append(body)
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    status = server._fail.pop(0) if server._fail else 200
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(status, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                if server.delay:
                    server._stop.wait(server.delay)
                if status != 200:
                    self._send(status, {"error": {"message": f"scripted failure {status}", "type": "server_error"}})
                    return
                if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                               "code": "invalid_api_key"}})
                    return
                content = server.reply(body.get("messages", []))
                self._send(200, {
                    "id": f"chatcmpl-{server.requests}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
