"""An OpenAI-compatible chat-completions client for query expansion, on the `openai` package, with a reply cache.

- Endpoint: base URL, model and key from the expander's params, else `OPENAI_BASE_URL` / `OPENAI_API_KEY` (the key
  is read from the environment variable the params name; it is never stored in params, results, caches or logs).
  A server that needs no key (a local `transformers serve`) gets a placeholder.
- Retries: the `openai` client's own — it retries 408/409/429/5xx, timeouts and connection errors with exponential
  backoff (0.5 s doubling, at most 8 s, 0–25 % jitter) and honours `Retry-After`; `max_retries` sets how many.
- A timeout per request (`timeout` seconds), bounded concurrency (`concurrency` requests in flight, threads).
- Errors: a refused key (401/403), an unreachable endpoint, a timeout or any other error status ends the run with one
  BenchError line naming the endpoint.
- Credentials in the base URL (userinfo, `?key=` and the like) are used for the requests and appear nowhere else:
  records and messages show the endpoint without them (bench/llm/redact.py).
- Replies are cached on disk (bench/llm/cache.py), so a rerun makes no request.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.llm.cache import CacheKey, ResponseCache
from bench.llm.redact import redact_url, scrub

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"  # what a keyless local server receives as bearer token


@dataclass(frozen=True)
class Prompt:
    """A chat prompt: a system message and a user template with `{question}` (and optionally `{m}`)."""

    system: str
    user: str

    def messages(self, question: str, **fields: Any) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user.format(question=question, **fields)}]

    def hash(self, **fields: Any) -> str:
        """sha256 (16 hex) of the prompt's wording and filled-in fields: recorded with results, part of cache keys."""
        blob = "\x00".join([self.system, self.user, *(f"{k}={v}" for k, v in sorted(fields.items()))])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and how they are made. Holds the *name* of the key's environment variable, not the key;
    `base_url` may hold credentials and is used for requests only (`shown_url` is what records and messages hold)."""

    base_url: str = field(repr=False)
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 3
    concurrency: int = 4
    temperature: float = 0.0
    max_tokens: int = 128

    @classmethod
    def resolve(cls, base_url: str | None, model: str | None, api_key_env: str = "OPENAI_API_KEY",
                owner: str = "llm", **settings: Any) -> Endpoint:
        """Fill the base URL from OPENAI_BASE_URL (else OpenAI's) and check the settings; the model is required."""
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not model:
            raise BenchError(f"{owner}: no LLM model given; pass --llm-model NAME (for a local `transformers serve`, "
                             f"the model folder path exactly as served)")
        ep = cls(base_url=url.rstrip("/"), model=model, api_key_env=api_key_env, **settings)
        if ep.timeout <= 0 or ep.concurrency < 1 or ep.max_retries < 0 or ep.max_tokens < 1:
            raise BenchError(f"{owner}: timeout and max_tokens must be > 0, concurrency ≥ 1, max_retries ≥ 0")
        return ep

    @property
    def shown_url(self) -> str:
        """The base URL without its credentials: what records and messages show."""
        return redact_url(self.base_url)

    def describe(self) -> dict[str, Any]:
        """What a result records about the endpoint (never the key, nor credentials in the URL)."""
        return {"base_url": self.shown_url, "model": self.model, "api_key_env": self.api_key_env,
                "timeout": self.timeout, "max_retries": self.max_retries, "concurrency": self.concurrency,
                "temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass
class Usage:
    """Counts of one client's work: requests sent (after the cache) and replies served from the cache."""

    requests: int = 0
    cache_hits: int = 0


class ChatClient:
    """Sends chat prompts for many questions to one endpoint, through the reply cache."""

    def __init__(self, endpoint: Endpoint, cache: ResponseCache | None = None) -> None:
        self.endpoint = endpoint
        self.cache = cache if cache is not None else ResponseCache()
        self.usage = Usage()
        self._lock = threading.Lock()
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.endpoint.base_url, api_key=self._key() or NO_KEY,
                                  timeout=self.endpoint.timeout, max_retries=self.endpoint.max_retries)
        return self._client

    def _key(self) -> str:
        return os.environ.get(self.endpoint.api_key_env, "")

    def cache_key(self, prompt: Prompt, question: str, **fields: Any) -> CacheKey:
        ep = self.endpoint
        return CacheKey(model=ep.model, prompt_hash=prompt.hash(**fields), question=question,
                        settings=(("max_tokens", ep.max_tokens), ("temperature", ep.temperature)))

    def complete(self, prompt: Prompt, questions: Sequence[str], progress: Callable[[int], None] | None = None,
                 **fields: Any) -> list[str]:
        """The reply to `prompt` for every question, in order; cached replies are reused, the rest requested with at
        most `concurrency` in flight. Each reply is cached as soon as it arrives, so an interrupted run resumes."""
        replies: dict[str, str] = {}
        todo: list[str] = []
        for q in dict.fromkeys(questions):  # distinct questions, first-seen order
            hit = self.cache.get(self.cache_key(prompt, q, **fields))
            if hit is None:
                todo.append(q)
            else:
                replies[q] = hit
                self.usage.cache_hits += 1
                if progress is not None:
                    progress(1)
        if todo:
            self._request_all(prompt, todo, replies, progress, fields)
        return [replies[q] for q in questions]

    def _request_all(self, prompt: Prompt, todo: list[str], replies: dict[str, str],
                     progress: Callable[[int], None] | None, fields: dict[str, Any]) -> None:
        def one(q: str) -> None:
            reply = self._request(prompt.messages(q, **fields))
            self.cache.put(self.cache_key(prompt, q, **fields), reply)
            with self._lock:
                replies[q] = reply
            if progress is not None:
                progress(1)

        pool = ThreadPoolExecutor(max_workers=min(self.endpoint.concurrency, len(todo)),
                                  thread_name_prefix="llm")
        try:
            futures: list[Future[None]] = [pool.submit(one, q) for q in todo]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _request(self, messages: list[dict[str, str]]) -> str:
        import openai

        ep = self.endpoint
        with self._lock:
            self.usage.requests += 1
        try:
            resp = self._openai().chat.completions.create(
                model=ep.model, messages=messages, temperature=ep.temperature, max_tokens=ep.max_tokens)
        except openai.APITimeoutError:
            raise BenchError(f"LLM endpoint {ep.shown_url} did not answer within {ep.timeout:g} s "
                             f"(after {ep.max_retries} retries)") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise BenchError(f"cannot connect to LLM endpoint {ep.shown_url}: {self._scrub(cause)}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            have = "is set" if self._key() else "is not set"
            raise BenchError(f"LLM endpoint {ep.shown_url} refused the request ({exc.status_code}): check the API key "
                             f"(${ep.api_key_env} {have})") from None
        except openai.APIStatusError as exc:
            raise BenchError(f"LLM endpoint {ep.shown_url} answered {exc.status_code} for model {ep.model!r}: "
                             f"{self._scrub(exc.message)}") from None
        except openai.OpenAIError as exc:
            raise BenchError(f"LLM endpoint {ep.shown_url}: {self._scrub(exc)}") from None
        choices = getattr(resp, "choices", None) or []
        content = choices[0].message.content if choices else None
        if not isinstance(content, str):
            raise BenchError(f"LLM endpoint {ep.shown_url} returned no message content for model {ep.model!r}")
        return content

    def _scrub(self, obj: object, limit: int = 300) -> str:
        """One line of an error's text, with the key and the URL's credentials (should they be echoed) blanked out."""
        text = scrub(" ".join(str(obj).split()), self.endpoint.base_url)
        key = self._key()
        if key:
            text = text.replace(key, "***")
        return text[:limit]
