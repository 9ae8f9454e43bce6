"""Endpoint URLs without their secrets: what results, caches, logs and error lines may hold of an LLM endpoint.

A base URL can carry credentials: userinfo (`http://user:password@host/v1`, or a bare token as the user) and query
parameters that hold a key or a signature (`?key=…`, `?api_key=…`, `?access_token=…`, `?sig=…`). Requests go to the URL
as given (httpx sends userinfo as HTTP Basic auth); everything stored or printed gets `redact_url(url)`: the same
endpoint with the userinfo dropped and those query parameters removed. `scrub(text, url)` blanks the secret values
out of any text (an error message that quotes the URL).

Secret query parameters: a name (case-insensitive, `-` read as `_`) that is one of SECRET_PARAMS or contains one of
SECRET_PARTS (`subscription_key`, `x_api_key`, `refresh_token`, `client_secret`, `signature`, …).
"""

from __future__ import annotations

import urllib.parse

SECRET_PARAMS = frozenset({"key", "sig", "code", "auth", "pass", "pwd", "jwt", "session", "sessionid"})
SECRET_PARTS = ("token", "secret", "password", "passwd", "api_key", "apikey", "_key", "key_", "signature",
                "credential", "auth")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's name says it holds a secret."""
    low = name.strip().lower().replace("-", "_")
    return low in SECRET_PARAMS or any(part in low for part in SECRET_PARTS)


def redact_url(url: str) -> str:
    """`url` without userinfo and without secret query parameters; other parts (scheme, host, port, path, other
    parameters) unchanged. A string that does not parse as a URL is returned as it is."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:  # an IPv6 address
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return url
    if "@" not in parts.netloc:
        netloc = parts.netloc
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if not is_secret_param(k)]
    new_query = urllib.parse.urlencode(kept) if len(kept) != len(query) else parts.query
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, new_query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secret values inside a URL (userinfo user and password, secret query values), raw and percent-decoded,
    longest first: what `scrub` blanks out."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.update(userinfo.split(":", 1))
    for raw in parts.query.split("&"):
        key, _, value = raw.partition("=")
        if value and is_secret_param(urllib.parse.unquote_plus(key)):
            found.add(value)
    found |= {urllib.parse.unquote_plus(s) for s in found}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """`text` with the URL shown without its secrets and every secret value of the URL replaced by `***`."""
    if not url:
        return text
    text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text
