"""Answer normalisation: how an answer alias and a passage are compared when gold passages are mapped (AmbigQA,
QAMPARI) and when the leak audit compares questions.

`normalise`: Unicode NFKD with combining marks removed (é → e), lower case, every character that is not a letter or
digit → space, the articles a / an / the removed (unless nothing else is left), whitespace collapsed — the SQuAD
answer normalisation plus accent folding. Matching is on token boundaries: " alias " in " passage ".
"""

from __future__ import annotations

import re
import unicodedata

NORMALISATION = "nfkd-ascii-fold, lower, non-alphanumeric→space, drop articles a/an/the, collapse spaces; token-bounded"
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
