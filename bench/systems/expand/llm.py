"""`llm` query expansion: an LLM lists diverse, distinct keywords for a multi-answer question; the query becomes the
question followed by the keywords (docs/architecture.md §6; the paper used GPT-4.1-mini).

Query format (`query_format`): `harness` (default) — the question, a space, then the parsed keywords joined by
", " (`expanded_query`); `reference` — the reference implementation's `Question: {question} \nRelevant Keywords:
{reply}` (a space before the line break; the reply as the model wrote it, unparsed: `reference_query`).

Any OpenAI-compatible chat endpoint works (bench/llm/client.py): OpenAI's, or the offline SmolLM2-135M-Instruct
behind `transformers serve` (README, "Query expansion and a local LLM endpoint"). Replies are cached on disk, so a
rerun makes no request. Replies are parsed leniently (`parse_keywords`): small models write numbered or bulleted
lists, preambles ("Here are some keywords:") and repeat the question, all of which are cleaned up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.llm import ChatClient, Prompt, ResponseCache
from bench.llm.options import LLMOptions
from bench.progress import make_progress
from bench.registry import register_expander
from bench.systems.stages import Expander

if TYPE_CHECKING:
    from bench.data.task import Split
    from bench.systems.context import RunContext

KEYWORD_PROMPT = Prompt(
    system="You help a search engine find documents for questions that have more than one correct answer.",
    user=(
        "Question: {question}\n\n"
        "This question has several different correct answers. Write a comma-separated list of diverse, distinct "
        "keywords that together point to all of those answers (names, places, dates, topics). "
        "Reply with the keywords only, on one line, separated by commas."
    ),
)

_BULLET = re.compile(r"^\s*(?:[-*•·+>]+|\(?\d{1,3}\s*[.):\]]|\d{1,3}\s+-|[a-zA-Z][.)])\s*")
_LABEL = re.compile(r"^\s*(?:keywords?|answer|sub-?questions?|questions?|q\d*)\s*\d*\s*[:\-–]\s*", re.IGNORECASE)
_EDGE = " \t\"'`*_“”‘’«»[](){}.;:!"


def clean_item(item: str) -> str:
    """One list item without its bullet / number / label, markdown emphasis, quotes and trailing punctuation."""
    text = item.strip()
    for _ in range(3):  # "1. **Keyword:** foo" needs more than one pass
        before = text
        text = _BULLET.sub("", text)
        text = text.strip(_EDGE)
        text = _LABEL.sub("", text)
        if text == before:
            break
    return " ".join(text.split())


def _is_preamble(line: str) -> bool:
    """A line that introduces the list ("Here are some keywords:", "Sure!") rather than being part of it."""
    s = line.strip().lower()
    return s.endswith(":") or s.startswith(("here are", "here is", "sure", "certainly", "okay", "of course"))


def parse_keywords(reply: str, question: str = "", limit: int = 10, max_words: int = 6) -> list[str]:
    """Keywords from an LLM reply: split on commas, semicolons and line breaks, strip list markup, drop preambles,
    items longer than `max_words` words (sentences), the question itself and case-insensitive duplicates; at most
    `limit`, in the order written."""
    out: list[str] = []
    seen = {question.strip().lower().rstrip("?")} if question.strip() else set()
    for line in reply.splitlines():
        if _is_preamble(line):
            # "Keywords: a, b, c" keeps what follows the colon
            head, sep, tail = line.partition(":")
            if not sep or not tail.strip():
                continue
            line = tail
        for part in re.split(r"[,;|]", line):
            item = clean_item(part)
            key = item.lower().rstrip("?")
            if not item or key in seen or len(item.split()) > max_words or not re.search(r"\w", item):
                continue
            seen.add(key)
            out.append(item)
            if len(out) >= limit:
                return out
    return out


def expanded_query(question: str, keywords: list[str]) -> str:
    """The expanded query text: the question, then the keywords joined by commas."""
    return f"{question.strip()} {', '.join(keywords)}".strip() if keywords else question


def reference_query(question: str, reply: str) -> str:
    """The reference implementation's expanded query: "Question: ", the question, " \n", "Relevant Keywords: ",
    then the LLM's reply verbatim."""
    return f"Question: {question} \nRelevant Keywords: {reply}"


QUERY_FORMATS = ("harness", "reference")


class LLMExpander(Expander):
    """Shared machinery of the LLM expanders: ask the endpoint (through the reply cache, with a progress bar), parse
    each reply into items, turn the items into the query's texts, and record per split what the parsing gave.
    A subclass says how (`parse`, `texts_of`, `split_stats`)."""

    prompt: Prompt = KEYWORD_PROMPT

    def __init__(self, params: Any, name: str) -> None:
        super().__init__(params, name)
        self._record: dict[str, Any] = {}

    def prompt_fields(self) -> dict[str, Any]:
        return {}

    def parse(self, question: str, reply: str) -> list[str]:
        """The items of one reply (keywords, sub-questions)."""
        raise NotImplementedError

    def texts_of(self, question: str, items: list[str], reply: str = "") -> list[str]:
        """The query's texts, given its items and the reply they were parsed from (at least one text)."""
        raise NotImplementedError

    def split_stats(self, items: list[list[str]], texts: list[list[str]]) -> dict[str, Any]:
        """What a result records about one split's parsed replies."""
        return {}

    def expand(self, texts: list[str], split: Split, ctx: RunContext) -> list[list[str]]:
        replies = self.ask(texts, ctx)
        items = [self.parse(q, r) for q, r in zip(texts, replies, strict=True)]
        out = [self.texts_of(q, i, r) for q, i, r in zip(texts, items, replies, strict=True)]
        self.record_split(split, texts, **self.split_stats(items, out))
        return out

    def ask(self, questions: list[str], ctx: RunContext) -> list[str]:
        endpoint = self.params.endpoint(owner=f"expander {self.name}")
        client = ChatClient(endpoint, ResponseCache(recipe=ctx.recipe))
        with make_progress(ctx.console) as progress:
            bar = progress.add_task(f"LLM {self.name}", total=len(set(questions)), status=endpoint.model)
            replies = client.complete(self.prompt, questions, progress=lambda n: progress.advance(bar, n),
                                      **self.prompt_fields())
        # requests and cache hits add up over the splits expanded in one run (a tuned re-ranker adds validation)
        rec = self._record
        rec.update(endpoint.describe(), prompt_hash=self.prompt.hash(**self.prompt_fields()),
                   requests=rec.get("requests", 0) + client.usage.requests,
                   cache_hits=rec.get("cache_hits", 0) + client.usage.cache_hits)
        return replies

    def record_split(self, split: Split, questions: list[str], **stats: Any) -> None:
        """Per-split statistics of the parsed replies, under `by_split` in the stage's record; `llm_calls` = the
        distinct questions asked, the calls this expansion needs on a cold cache (sent or answered from it)."""
        self._record.setdefault("by_split", {})[split.name] = {"queries": len(split),
                                                               "llm_calls": len(set(questions)), **stats}

    def info(self) -> dict[str, Any]:
        return dict(self._record)


@dataclass(frozen=True)
class KeywordParams(LLMOptions):
    """LLM options plus how many keywords are kept."""

    max_keywords: int = field(default=10, metadata={"min": 1})
    max_tokens: int = 64  # ten keywords fit; a small model that loops is cut short
    query_format: str = "harness"  # harness: `question kw1, kw2`; reference: `Question: q \nRelevant Keywords: reply`

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.query_format not in QUERY_FORMATS:
            raise ValueError(f"query_format must be one of {', '.join(QUERY_FORMATS)}, got {self.query_format!r}")


@register_expander("llm", description="LLM keyword expansion: question + comma-separated diverse keywords "
                   "(OpenAI-compatible endpoint, cached replies)", params=KeywordParams)
class KeywordExpander(LLMExpander):
    """question → question + keywords (one text per query)."""

    def parse(self, question: str, reply: str) -> list[str]:
        return parse_keywords(reply, question, self.params.max_keywords)

    def texts_of(self, question: str, items: list[str], reply: str = "") -> list[str]:
        if self.params.query_format == "reference":
            return [reference_query(question, reply)]
        return [expanded_query(question, items)]

    def split_stats(self, items: list[list[str]], texts: list[list[str]]) -> dict[str, Any]:
        counts = [len(k) for k in items]
        return {"mean_keywords": round(sum(counts) / max(len(counts), 1), 3),
                "queries_without_keywords": sum(c == 0 for c in counts)}
