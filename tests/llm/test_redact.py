"""Endpoint URLs without their secrets (bench/llm/redact.py): what is stored and printed of an LLM endpoint."""

from __future__ import annotations

import pytest

from bench.llm.client import Endpoint
from bench.llm.options import LLMOptions
from bench.llm.redact import is_secret_param, redact_url, scrub, url_secrets
from bench.params import params_dict


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pw@127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("https://TOKEN@api.example.com/v1", "https://api.example.com/v1"),
    ("https://h/v1?api_key=K1&api-version=2024-01", "https://h/v1?api-version=2024-01"),
    ("https://h/v1?key=K&sig=S&access_token=T&Subscription-Key=X&model=m", "https://h/v1?model=m"),
    ("http://[::1]:9/v1", "http://[::1]:9/v1"),
    ("http://u:p@[::1]:9/v1", "http://[::1]:9/v1"),
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ("not a url", "not a url"),
])
def test_redact_url_drops_userinfo_and_secret_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_secret_parameter_names() -> None:
    for name in ("key", "api_key", "API-KEY", "apikey", "token", "access_token", "sig", "signature", "client_secret",
                 "password", "x-api-key", "subscription-key", "code"):
        assert is_secret_param(name), name
    for name in ("api-version", "model", "deployment", "format"):
        assert not is_secret_param(name), name


def test_scrub_blanks_secret_values_also_percent_encoded() -> None:
    url = "http://alice:p%40ss@h:1/v1?token=abc%2Fdef"
    assert set(url_secrets(url)) >= {"alice", "p%40ss", "p@ss", "abc%2Fdef", "abc/def"}
    text = f"failed at {url}; the server said p@ss and abc/def"
    assert scrub(text, url) == "failed at http://h:1/v1; the server said *** and ***"


def test_params_record_and_endpoint_describe_the_url_without_credentials() -> None:
    opts = LLMOptions(base_url="http://u:secret@h:1/v1?key=k1", model="m")
    assert params_dict(opts)["base_url"] == "http://h:1/v1"
    assert "secret" not in repr(opts)
    ep = opts.endpoint("test")
    assert ep.base_url == "http://u:secret@h:1/v1?key=k1"  # what the requests use
    assert ep.describe()["base_url"] == ep.shown_url == "http://h:1/v1"
    assert "secret" not in repr(ep)
    assert params_dict(LLMOptions(model="m"))["base_url"] is None
    assert Endpoint.resolve(None, "m").describe()["base_url"].startswith("https://")
