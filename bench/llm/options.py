"""The LLM options shared by the LLM expanders' params dataclasses (filled by `--llm-base-url` / `--llm-model` or
`-r <expander>.<key>=value`). None of them holds the API key: only the name of its environment variable; credentials
inside the base URL are used for requests but never recorded or printed (bench/llm/redact.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from bench.llm.client import Endpoint
from bench.llm.redact import redact_url


@dataclass(frozen=True)
class LLMOptions:
    """Endpoint and request settings. base_url None → $OPENAI_BASE_URL, else OpenAI's; model is required."""

    # where and how requests are sent: not part of a system's name (identity=False), the model and prompt are;
    # the URL is recorded without credentials (`stored`: bench/params.py params_dict) and left out of repr()
    base_url: str | None = field(default=None, repr=False, metadata={"identity": False, "stored": redact_url})
    model: str | None = None
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"identity": False})
    concurrency: int = field(default=4, metadata={"identity": False})
    timeout: float = field(default=60.0, metadata={"identity": False})
    max_retries: int = field(default=3, metadata={"identity": False})
    temperature: float = 0.0
    max_tokens: int = 128

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be ≥ 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be ≥ 0, got {self.max_retries}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be ≥ 1, got {self.max_tokens}")
        if not self.api_key_env:
            raise ValueError("api_key_env must name an environment variable")
        for f in fields(self):  # an expander's own settings may declare a lower bound: field(metadata={"min": 1})
            low = f.metadata.get("min")
            if low is not None and getattr(self, f.name) < low:
                raise ValueError(f"{f.name} must be ≥ {low}, got {getattr(self, f.name)}")

    def endpoint(self, owner: str) -> Endpoint:
        return Endpoint.resolve(self.base_url, self.model, self.api_key_env, owner=owner, timeout=self.timeout,
                                max_retries=self.max_retries, concurrency=self.concurrency,
                                temperature=self.temperature, max_tokens=self.max_tokens)
