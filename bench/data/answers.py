"""Answer normalisation: how an answer alias and a passage are compared when gold passages are mapped (AmbigQA,
QAMPARI) and when the leak audit compares questions.

Two matchers (`MATCHERS`), each a function text → a space-joined token string; an alias matches a passage when its
form is a run of whole tokens of the passage's form (`contains_alias`: " alias " in " passage "):

- `harness` (`normalise`, the default): Unicode NFKD with combining marks removed (é → e), lower case, every
  character that is not a letter or digit → space, the articles a / an / the removed (unless nothing else is left),
  whitespace collapsed — the SQuAD answer normalisation plus accent folding;
- `dpr` (`dpr_form`): the has_answer test of DPR (Karpukhin et al. 2020), which the reference implementation uses:
  Unicode NFD, then tokens that are either a run of letters, digits and combining marks or any other single
  character that is not a space or a control character, each lower-cased — punctuation and articles stay tokens, so
  "AC/DC" is "ac / dc" and "The Beatles" needs the "the".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import regex

NORMALISATION = "nfkd-ascii-fold, lower, non-alphanumeric→space, drop articles a/an/the, collapse spaces; token-bounded"
DPR_MATCHING = ("DPR has_answer (string): NFD, tokens = runs of letters/digits/combining marks or single other "
                "non-space non-control characters, lower case; alias tokens a contiguous run of passage tokens")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """The normalised form used for alias matching (module docstring)."""
    if not text.isascii():  # NFKD + dropping combining marks only where there is something to fold
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower()
    text = _NON_WORD.sub(" ", text)
    stripped = " ".join(_ARTICLES.sub(" ", text).split())
    return stripped or " ".join(text.split())  # an answer that is only an article ("A") keeps it


def contains_alias(passage_norm: str, alias_norm: str) -> bool:
    """Whole-token substring test on normalised strings."""
    return bool(alias_norm) and f" {alias_norm} " in f" {passage_norm} "


_DPR_TOKEN = regex.compile(r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]",
                           flags=regex.IGNORECASE | regex.UNICODE | regex.MULTILINE)


def dpr_tokens(text: str) -> list[str]:
    """DPR's simple tokenisation, uncased: NFD, then each run of letters / digits / combining marks, and each other
    character that is neither a separator (space) nor a control / other character, is one token, lower-cased."""
    return [t.lower() for t in _DPR_TOKEN.findall(unicodedata.normalize("NFD", text))]


def dpr_form(text: str) -> str:
    """The DPR tokens joined by single spaces: tokens hold no spaces, so a token-bounded substring test on these
    strings is DPR's contiguous sub-sequence test."""
    return " ".join(dpr_tokens(text))


MATCHERS: dict[str, tuple[Callable[[str], str], str]] = {"harness": (normalise, NORMALISATION),
                                                          "dpr": (dpr_form, DPR_MATCHING)}


def matcher(name: str) -> tuple[Callable[[str], str], str]:
    """(text → form, description) of a matcher; ValueError for an unknown name."""
    if name not in MATCHERS:
        raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}, got {name!r}")
    return MATCHERS[name]
