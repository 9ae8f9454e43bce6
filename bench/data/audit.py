"""Data audit: train → test leakage and gold-passage overlaps in a multi-answer task.

Checks (each test question against every train / val question):
- duplicate question: Jaccard similarity of the normalised token sets (bench/data/answers.py) ≥
  `question_threshold` (0.9; 1.0 = the same normalised text);
- duplicate gold set: Jaccard similarity of the two questions' gold-passage sets (all clusters) ≥ `gold_threshold`
  (0.9; 1.0 = the same set);
and, in every split:
- gold passages repeated across a question's clusters (one passage covers two answers), and how many questions have
  answers sharing a gold passage.

Jaccard(A, B) = |A ∩ B| / |A ∪ B|, computed for all pairs at once as a sparse product of binary incidence matrices,
a block of test rows at a time. The motivation: the method's reference release trained on AmbigQA dev questions it
then tested on, and 44 of its 531 QAMPARI test questions have a near-duplicate gold set in train.

`apply_audit(data, drop)` records the report in `data.info["audit"]` (`ran`, thresholds, findings, `dropped`) and, with
`drop`, removes the leaked test questions (duplicate question or duplicate gold set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.answers import normalise
from bench.data.task import Split, TaskData

TRAIN_SPLITS = ("train", "val", "validation", "dev")


@dataclass
class AuditReport:
    question_threshold: float
    gold_threshold: float
    duplicate_questions: list[dict[str, Any]] = field(default_factory=list)  # test_id, train_id, split, jaccard
    duplicate_gold_sets: list[dict[str, Any]] = field(default_factory=list)
    repeated_gold: dict[str, int] = field(default_factory=dict)  # split → gold passages in > 1 cluster of a question
    questions_sharing_gold: dict[str, list[str]] = field(default_factory=dict)  # split → question ids

    @property
    def leaked(self) -> list[str]:
        """Test question ids with a duplicate question or a duplicate gold set in train."""
        found = self.duplicate_questions + self.duplicate_gold_sets
        return sorted({d["test_id"] for d in found})

    def record(self, dropped: Sequence[str]) -> dict[str, Any]:
        out = asdict(self)
        out["questions_sharing_gold"] = {k: len(v) for k, v in self.questions_sharing_gold.items()}
        return {"ran": True, **out, "leaked_test_questions": self.leaked, "dropped": list(dropped)}


def _incidence(sets: Sequence[Sequence[int]], width: int) -> sp.csr_matrix:
    indices = np.concatenate([np.asarray(sorted(set(s)), dtype=np.int64) for s in sets]) if sets else np.zeros(0)
    indptr = np.cumsum([0] + [len(set(s)) for s in sets])
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(sets), width))


def jaccard_pairs(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], threshold: float,
                  block: int = 256) -> list[tuple[int, int, float]]:
    """All (i, j, J) with Jaccard(a[i], b[j]) ≥ threshold (empty sets never match)."""
    width = 1 + max([max(s, default=-1) for s in a] + [max(s, default=-1) for s in b] + [0])
    A, B = _incidence(a, width), _incidence(b, width)
    na = np.asarray(A.sum(axis=1)).ravel()
    nb = np.asarray(B.sum(axis=1)).ravel()
    BT = B.T.tocsc()
    out: list[tuple[int, int, float]] = []
    for lo in range(0, A.shape[0], block):
        inter = (A[lo: lo + block] @ BT).tocoo()
        i, j, x = inter.row, inter.col, inter.data
        jac = x / (na[lo + i] + nb[j] - x)
        keep = jac >= threshold - 1e-9
        out.extend(zip((lo + i[keep]).tolist(), j[keep].tolist(), jac[keep].astype(float).tolist(), strict=True))
    return out


def _token_sets(texts: Sequence[str], vocab: dict[str, int]) -> list[list[int]]:
    return [[vocab.setdefault(t, len(vocab)) for t in set(normalise(x).split())] for x in texts]


def _gold_sets(split: Split) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(len(split))]
    for q, d in zip(split.targets.query.tolist(), split.targets.doc.tolist(), strict=True):
        out[q].append(d)
    return out


def audit(data: TaskData, question_threshold: float = 0.9, gold_threshold: float = 0.9,
          test_split: str = "test") -> AuditReport:
    report = AuditReport(question_threshold, gold_threshold)
    test = data.splits.get(test_split)
    for name, split in data.splits.items():
        t = split.targets
        pairs = np.unique(np.stack([t.query, t.cluster, t.doc], 1), axis=0)
        qd = pairs[:, [0, 2]]
        uq, counts = np.unique(qd, axis=0, return_counts=True)
        shared = uq[counts > 1]
        report.repeated_gold[name] = int(len(shared))
        report.questions_sharing_gold[name] = sorted({split.query_ids[q] for q in shared[:, 0].tolist()})
    if test is None:
        return report
    vocab: dict[str, int] = {}
    test_tokens = _token_sets(test.texts or [], vocab) if test.texts else []
    for name in TRAIN_SPLITS:
        train = data.splits.get(name)
        if train is None or name == test_split:
            continue
        if test.texts and train.texts:
            for i, j, jac in jaccard_pairs(test_tokens, _token_sets(train.texts, vocab), question_threshold):
                report.duplicate_questions.append({"test_id": test.query_ids[i], "train_id": train.query_ids[j],
                                                   "split": name, "jaccard": round(jac, 4)})
        for i, j, jac in jaccard_pairs(_gold_sets(test), _gold_sets(train), gold_threshold):
            report.duplicate_gold_sets.append({"test_id": test.query_ids[i], "train_id": train.query_ids[j],
                                               "split": name, "jaccard": round(jac, 4)})
    return report


def apply_audit(data: TaskData, drop: bool, question_threshold: float = 0.9, gold_threshold: float = 0.9) -> TaskData:
    """Run the audit, record it in the task info, and drop the leaked test questions when asked."""
    report = audit(data, question_threshold, gold_threshold)
    dropped: list[str] = []
    if drop and report.leaked and "test" in data.splits:
        test = data.splits["test"]
        leaked = set(report.leaked)
        keep = np.asarray([i for i, q in enumerate(test.query_ids) if q not in leaked], dtype=np.int64)
        dropped = [q for q in test.query_ids if q in leaked]
        data.splits["test"] = test.subset(keep)
    data.info["audit"] = report.record(dropped) | {"drop_leaked": drop}
    return data
