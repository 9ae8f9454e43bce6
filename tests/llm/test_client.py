"""The OpenAI-compatible client (bench/llm) with the real `openai` package against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.llm import ChatClient, Endpoint, Prompt, ResponseCache
from tests.support.openai_server import OpenAIServer, question_of

PROMPT = Prompt(system="You list keywords.", user="Question: {question}\nKeywords, comma-separated:")
QUESTIONS = ["Who wrote Hamlet?", "Which rivers cross Paris?", "Who wrote Hamlet?"]


def echo(messages: list[dict]) -> str:
    return f"reply to {question_of(messages)}"


def make_client(url: str, cache_dir: Path, **kw: object) -> ChatClient:
    settings: dict = {"timeout": 10.0, "max_retries": 2, **kw}
    return ChatClient(Endpoint.resolve(url, "test-model", **settings), ResponseCache(cache_dir))


def test_replies_in_order_and_duplicates_asked_once(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as server:
        client = make_client(server.base_url, tmp_path)
        replies = client.complete(PROMPT, QUESTIONS)
        assert replies == [f"reply to {q}" for q in QUESTIONS]
        assert server.requests == 2  # the repeated question is asked once
        body = server.bodies[0]
        assert body["model"] == "test-model" and body["temperature"] == 0.0
        assert body["messages"][0] == {"role": "system", "content": "You list keywords."}


def test_second_run_makes_no_request(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as server:
        first = make_client(server.base_url, tmp_path).complete(PROMPT, QUESTIONS)
        assert server.requests == 2
        again = make_client(server.base_url, tmp_path)
        assert again.complete(PROMPT, QUESTIONS) == first
        assert server.requests == 2
        assert again.usage.requests == 0 and again.usage.cache_hits == 2
        # another prompt wording or model is another cache key
        make_client(server.base_url, tmp_path).complete(Prompt("x", "Question: {question}"), QUESTIONS[:1])
        assert server.requests == 3


def test_cache_is_keyed_by_model_not_port(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as a:
        make_client(a.base_url, tmp_path).complete(PROMPT, QUESTIONS[:1])
    with OpenAIServer(reply=lambda m: "other") as b:
        assert make_client(b.base_url, tmp_path).complete(PROMPT, QUESTIONS[:1]) == [f"reply to {QUESTIONS[0]}"]
        assert b.requests == 0


def test_500_then_success_is_retried(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as server:
        server.fail_next(500)
        client = make_client(server.base_url, tmp_path)
        assert client.complete(PROMPT, QUESTIONS[:1]) == [f"reply to {QUESTIONS[0]}"]
        assert server.requests == 2  # the failed one and its retry
        assert client.usage.requests == 1


def test_429_retried_then_gives_up_with_one_line(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as server:
        server.fail_next(429, times=10)
        client = make_client(server.base_url, tmp_path, max_retries=1)
        with pytest.raises(BenchError) as err:
            client.complete(PROMPT, QUESTIONS[:1])
        assert server.requests == 2
        msg = str(err.value)
        assert "429" in msg and server.base_url in msg and "\n" not in msg


def test_401_names_the_endpoint_not_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-SECRET-401-abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with OpenAIServer(reply=echo, api_key="the-right-key") as server:
        with pytest.raises(BenchError) as err:
            make_client(server.base_url, tmp_path).complete(PROMPT, QUESTIONS[:1])
        assert server.auth_headers[0] == f"Bearer {secret}"  # the key is sent...
    msg = str(err.value)
    assert server.base_url in msg and "401" in msg and "OPENAI_API_KEY" in msg
    assert secret not in msg and "\n" not in msg  # ...but never shown
    assert server.requests == 1  # a 401 is not retried


def test_keyless_local_server_gets_a_placeholder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(reply=echo) as server:
        make_client(server.base_url, tmp_path).complete(PROMPT, QUESTIONS[:1])
        assert server.auth_headers == ["Bearer no-key"]


def test_slow_server_times_out(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo, delay=10.0) as server:
        client = make_client(server.base_url, tmp_path, timeout=0.5, max_retries=0)
        t = time.perf_counter()
        with pytest.raises(BenchError) as err:
            client.complete(PROMPT, QUESTIONS[:1])
        elapsed = time.perf_counter() - t
    assert elapsed < 5.0
    assert "did not answer within 0.5 s" in str(err.value) and server.base_url in str(err.value)


def test_connection_refused_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(BenchError) as err:
        make_client(url, tmp_path, max_retries=0).complete(PROMPT, QUESTIONS[:1])
    assert str(err.value).startswith(f"cannot connect to LLM endpoint {url}") and "\n" not in str(err.value)


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    questions = [f"question number {i}?" for i in range(8)]
    with OpenAIServer(reply=echo, delay=0.2) as server:
        make_client(server.base_url, tmp_path, concurrency=2).complete(PROMPT, questions)
        assert server.requests == 8
        assert server.max_in_flight == 2


def test_damaged_cache_entry_is_asked_again(tmp_path: Path) -> None:
    with OpenAIServer(reply=echo) as server:
        client = make_client(server.base_url, tmp_path)
        client.complete(PROMPT, QUESTIONS[:1])
        path = client.cache.path(client.cache_key(PROMPT, QUESTIONS[0]))
        path.write_text("{ truncated")
        assert make_client(server.base_url, tmp_path).complete(PROMPT, QUESTIONS[:1]) == [f"reply to {QUESTIONS[0]}"]
        assert server.requests == 2


def test_endpoint_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    ep = Endpoint.resolve(None, "m")
    assert ep.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert Endpoint.resolve(None, "m").base_url == "https://api.openai.com/v1"
    with pytest.raises(BenchError, match="--llm-model"):
        Endpoint.resolve("http://x/v1", None)
    assert "key" not in " ".join(str(v) for k, v in ep.describe().items() if k != "api_key_env").lower()
