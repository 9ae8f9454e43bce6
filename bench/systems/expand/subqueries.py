"""`subqueries`: a training-free multi-query baseline. An LLM writes m distinct sub-questions, one per likely answer;
each becomes its own query text, which the base retriever encodes into its own vector (or bm25 searches on its own),
and the m lists are fused like AMER's m vectors (`--fusion`, round-robin by default).

Same client and reply cache as `llm` (bench/systems/expand/llm.py). Parsing (`parse_subqueries`) is lenient: list
markup, "Sub-question 1:" labels and preambles are stripped, duplicates dropped; a reply with fewer than m usable
lines gives fewer texts for that query (the pipeline's mask allows a varying number), and a reply with none falls
back to the question itself, so every query keeps at least one text. `include_question=true` adds the original
question as one more text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.llm import Prompt
from bench.llm.options import LLMOptions
from bench.registry import register_expander
from bench.systems.expand.llm import LLMExpander, _is_preamble, clean_item

if TYPE_CHECKING:
    pass

SUBQUERY_PROMPT = Prompt(
    system="You help a search engine find documents for questions that have more than one correct answer.",
    user=(
        "Question: {question}\n\n"
        "This question has several different correct answers. Write {m} distinct, specific questions, each aimed at "
        "a different one of the likely answers. Reply with exactly {m} questions, one per line, and nothing else."
    ),
)


def parse_subqueries(reply: str, m: int, question: str = "", min_words: int = 2) -> list[str]:
    """At most m sub-questions from an LLM reply: one per line (several '?'-ended questions on one line are split),
    list markup and labels stripped, preambles, lines shorter than `min_words` words, the question itself and
    case-insensitive duplicates dropped, in the order written."""
    out: list[str] = []
    seen = {question.strip().lower()} if question.strip() else set()
    for line in reply.splitlines():
        if not line.strip() or (_is_preamble(line) and "?" not in line):
            continue
        for part in re.findall(r"[^?]+\?|[^?]+$", line):
            item = clean_item(part)
            if item and part.rstrip().endswith("?"):
                item = item.rstrip("?") + "?"
            key = item.lower()
            if len(item.split()) < min_words or key in seen:
                continue
            seen.add(key)
            out.append(item)
            if len(out) >= m:
                return out
    return out


@dataclass(frozen=True)
class SubqueryParams(LLMOptions):
    """LLM options plus m, the number of sub-questions asked for."""

    m: int = field(default=3, metadata={"min": 1})
    include_question: bool = False
    max_tokens: int = 128


@register_expander("subqueries", description="LLM sub-queries: m distinct sub-questions per question, each its own "
                   "query vector / list, fused like AMER's (OpenAI-compatible endpoint, cached)", params=SubqueryParams)
class SubqueryExpander(LLMExpander):
    """question → up to m sub-questions (each searched on its own, then fused)."""

    prompt = SUBQUERY_PROMPT

    def prompt_fields(self) -> dict[str, Any]:
        return {"m": self.params.m}

    def parse(self, question: str, reply: str) -> list[str]:
        return parse_subqueries(reply, self.params.m, question)

    def texts_of(self, question: str, items: list[str], reply: str = "") -> list[str]:
        if not items:  # no usable line: the question itself, so every query keeps a text
            return [question]
        return [question, *items] if self.params.include_question else items

    def split_stats(self, items: list[list[str]], texts: list[list[str]]) -> dict[str, Any]:
        self._record["m"] = self.params.m
        counts = [len(t) for t in texts]
        return {"mean_texts": round(sum(counts) / max(len(counts), 1), 3),
                "queries_falling_back_to_question": sum(not i for i in items)}
