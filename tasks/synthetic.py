"""Synthetic vector tasks (docs/architecture.md §5): each input x has m = 5 targets y_i = T_i(x), far apart by
construction.

Six settings: {linear, mlp} × {single, multi, ood}.
- linear: T1 = I, T2 = Ma, T3 = Mb, T4 = −Ma, T5 = −Mb (Ma, Mb random rotations), so the targets' mean is 0 and
  no single vector is close to all five.
- mlp (`mlp_variant`; every variant is a chain of Linear layers with GELU between them, every layer of one MLP
  using the same matrix and a zero bias; the weights of MLPs 4 and 5 are those of MLPs 2 and 3 negated):
  - `negated` (default): two layers, T_i(x) = W_i · gelu(W_i · x) with W = [Ma, Mb, Mc, −Mb, −Mc], and the outputs of
    MLPs 4 and 5 negated as well. Ma is a random rotation, Mb and Mc rotations exactly Frobenius-orthogonal to Ma and
    to each other (`orthogonal_rotations`). Its targets sit as far apart as the reference generator's (mean pairwise
    cosine −0.04, pairs (2,4) and (3,5) at −0.18; docs/fidelity.md).
  - `paper` (the paper's text): the same two layers with the weights negated only — GELU's asymmetry then leaves the
    paired targets positively correlated (cosine +0.18) and a single query already comes close to all five.
  - `reference` (the reference implementation's generator): three layers, T_i(x) = W_i · gelu(W_i · gelu(W_i · x)),
    weights negated only, with its rotations: each the polar factor U·Vᵀ of a Gaussian matrix (nearest orthogonal
    matrix), Mb and Mc made Frobenius-orthogonal to the earlier ones by alternating projections
    (`reference_rotations`).
- inputs: single = N(0, I) for train and test; multi = train and test evenly from five distributions (N(0, I),
  N(0, 4I), correlated Gaussian 0.5·AAᵀ + 0.1·I, uniform[−2, 2], Laplace(0, 1) + Gaussian noise); ood = train evenly
  from the first four, test from the fifth. `inputs=harness` (default): A_ij ~ N(0, 1/d) and noise variance 0.1;
  `inputs=reference`: A_ij ~ N(0, 1) and noise standard deviation 0.1, as the reference generator draws them.
- corpus: every target of train and test plus N(0, I) negatives, shuffled; similarity is cosine.

Varying number of targets (`-t m=2..5`; default `m=5`, the paper's setting, generated exactly as before): input x
keeps the first c(x) of its five targets, with c(x) = m_lo + (Σ_j 2^j·[x_j > 0]) mod (m_hi − m_lo + 1) over its first
⌈log2(m_hi − m_lo + 1)⌉ coordinates — a function of the input, so a model can learn how many answers a query has
(for 2..5: c = 2 + [x_0 > 0] + 2·[x_1 > 0], each count a quarter of N(0, I) inputs). Only the kept targets enter
the corpus; the task records m = "2..5" and every query's own number of answer clusters.

Sizes (`scale`): `cpu` (default) is d = 128, 4,000 train, 500 test, 77,500 negatives, so the corpus holds 100,000
vectors (22,500 targets); `scale=paper` is the paper's d = 1024, 20,000 train, 1,000 test and a 200,000-vector corpus
(95,000 negatives). A size given explicitly (`-t d=256`) wins over the scale's. Generation is deterministic for a seed
and cached on disk; the default task's arrays and cache key are those it had before `scale`, `inputs` and the
`reference` variant existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.task import Corpus, Split, Targets, Task, TaskData
from bench.params import positive
from bench.progress import STDERR
from bench.registry import register_task
from bench.storage.cache import array_hash, cache_root, load_or_build_arrays, stable_hash

GENERATOR_VERSION = 1
M_TARGETS = 5
TRANSFORMS = ("linear", "mlp")
SETTINGS = ("single", "multi", "ood")
DISTRIBUTIONS = ("normal", "normal-4", "correlated", "uniform", "laplace-noise")
ARRAYS = ("corpus", "train_x", "test_x", "train_targets", "test_targets")  # what a cached task file must hold
MLP_VARIANTS = ("negated", "paper", "reference")
INPUTS = ("harness", "reference")
# sizes per scale: d, n_train, n_test, n_negatives (paper: 5 · 21,000 targets + 95,000 negatives = a 200,000 corpus)
SCALES = {"cpu": (128, 4000, 500, 77_500), "paper": (1024, 20_000, 1000, 95_000)}
SIZE_FIELDS = ("d", "n_train", "n_test", "n_negatives")


@dataclass(frozen=True)
class SyntheticParams:
    d: int = 128
    n_train: int = 4000
    n_test: int = 500
    n_negatives: int = 77_500
    seed: int = 0
    mlp_variant: str = "negated"  # negated | paper | reference (module docstring)
    m: str = "5"  # targets per input: "5", or a range "lo..hi" (1 ≤ lo ≤ hi ≤ 5) counted from the input's signs
    inputs: str = "harness"  # harness | reference: the correlated inputs' A and the Laplace inputs' noise
    scale: str = "cpu"  # cpu | paper: the sizes left at their cpu defaults become the paper's

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        for name, cpu, size in zip(SIZE_FIELDS, SCALES["cpu"], SCALES[self.scale], strict=True):
            if getattr(self, name) == cpu:  # a size given explicitly (another value) wins over the scale's
                object.__setattr__(self, name, size)
        target_range(self.m)
        positive(self, d=self.d, n_train=self.n_train, n_test=self.n_test)
        if self.n_negatives < 0:
            raise ValueError(f"n_negatives must be ≥ 0, got {self.n_negatives}")
        if self.mlp_variant not in MLP_VARIANTS:
            raise ValueError(f"mlp_variant must be one of {', '.join(MLP_VARIANTS)}, got {self.mlp_variant!r}")
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")

    def scale_label(self) -> str:
        """The sizes in words, for tables: which scale, and the paper's where they differ."""
        n_docs = (self.n_train + self.n_test) * M_TARGETS + self.n_negatives
        own = f"d={self.d}, {self.n_train:,} train / {self.n_test:,} test, corpus {n_docs:,}"
        paper = dict(zip(SIZE_FIELDS, SCALES["paper"], strict=True))
        if all(getattr(self, k) == v for k, v in paper.items()):
            return f"paper scale ({own})"
        named = "cpu scale" if all(getattr(self, k) == v for k, v in zip(SIZE_FIELDS, SCALES["cpu"], strict=True)) \
            else "custom sizes"
        return f"{named} ({own}; the paper: d=1024, 20,000 / 1,000, corpus 200,000: -t scale=paper)"


def target_range(m: str) -> tuple[int, int]:
    """(lo, hi) of the `m` parameter: "5" → (5, 5), "2..5" → (2, 5); ValueError otherwise."""
    text = str(m).strip()
    lo_s, sep, hi_s = text.partition("..")
    try:
        lo, hi = (int(lo_s), int(hi_s)) if sep else (int(text), int(text))
    except ValueError:
        raise ValueError(f"m must be a count (5) or a range lo..hi (2..5), got {m!r}") from None
    if not 1 <= lo <= hi <= M_TARGETS:
        raise ValueError(f"m must lie within 1..{M_TARGETS} with lo ≤ hi, got {m!r}")
    if not sep and lo != M_TARGETS:
        raise ValueError(f"a fixed m must be {M_TARGETS} (the five transformations); use a range such as 2..5")
    return lo, hi


def target_counts(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """c(x) = lo + (Σ_j 2^j·[x_j > 0]) mod (hi − lo + 1) over the first ⌈log2(hi − lo + 1)⌉ coordinates (module
    docstring): how many of its targets input x keeps."""
    k = hi - lo + 1
    bits = int(np.ceil(np.log2(k))) if k > 1 else 0
    code = sum((x[:, j] > 0).astype(np.int64) << j for j in range(bits)) if bits else np.zeros(len(x), np.int64)
    return lo + np.asarray(code) % k


def random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign of R's diagonal fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def orthogonal_rotations(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three orthogonal matrices Ma, Mb, Mc, pairwise orthogonal in the Frobenius inner product.

    Mb = Ma·P·D1·Pᵀ and Mc = Ma·P·D2·Pᵀ with P a random rotation and D1, D2 diagonal ±1 patterns with
    tr(D1) = tr(D2) = tr(D1·D2) = 0, so ⟨Ma, Mb⟩ = tr(D1) = 0, ⟨Ma, Mc⟩ = tr(D2) = 0, ⟨Mb, Mc⟩ = tr(D1·D2) = 0
    (exactly when 4 divides d, to within 2/d otherwise).
    """
    ma = random_rotation(rng, d)
    p = random_rotation(rng, d)
    idx = np.arange(d)
    d1 = np.where(idx % 4 < 2, 1.0, -1.0)
    d2 = np.where(idx % 2 == 0, 1.0, -1.0)
    mb = ma @ (p * d1) @ p.T
    mc = ma @ (p * d2) @ p.T
    return ma, mb, mc


def polar(x: np.ndarray) -> np.ndarray:
    """The orthogonal matrix nearest to x in Frobenius norm, U·Vᵀ from x = U·S·Vᵀ, with the last column of U flipped
    when that makes the determinant +1 (a rotation)."""
    u, _, vt = np.linalg.svd(x)
    if np.linalg.slogdet(u @ vt)[0] < 0:
        u[:, -1] = -u[:, -1]
    return u @ vt


def reference_rotations(rng: np.random.Generator, d: int, n: int = 3,
                        rounds: int = 20) -> list[np.ndarray]:
    """`n` rotations as the reference generator builds them (docs/fidelity.md): the first is the polar factor of a
    Gaussian matrix; each next one starts from a fresh Gaussian X and alternates `rounds` times between removing X's
    Frobenius projections on the earlier rotations (X − Σ_j ⟨M_j, X⟩/⟨M_j, M_j⟩ · M_j) and projecting back onto the
    rotations (`polar`), then does both once more. Pairwise Frobenius cosines end near 1e-8, not exactly 0."""
    out = [polar(rng.standard_normal((d, d)))]
    for _ in range(n - 1):
        x = rng.standard_normal((d, d))
        for _ in range(rounds + 1):
            for m in out:
                x = x - (np.sum(m * x) / np.sum(m * m)) * m
            x = polar(x)
        out.append(x)
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # here: `bench list tasks` loads no scipy

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


@dataclass(frozen=True)
class TargetMLP:
    """One target transformation of the mlp tasks: `layers` Linear layers that all use the one matrix `weight` (the
    nn.Linear convention, y = W·h, zero bias) with GELU between consecutive layers, the output negated when
    `negate_output`: T(x) = ±W·gelu(W·…gelu(W·x))."""

    weight: np.ndarray
    layers: int
    negate_output: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Rows of x (n, d) → rows of T(x) (n, d)."""
        h = x @ self.weight.T
        for _ in range(self.layers - 1):
            h = gelu(h) @ self.weight.T
        return -h if self.negate_output else h


def target_mlps(variant: str, mats: list[np.ndarray]) -> list[TargetMLP]:
    """The five MLPs of a variant from its three matrices (Ma, Mb, Mc): weights [Ma, Mb, Mc, −Mb, −Mc]; two layers
    (`negated`, `paper`) or three (`reference`); `negated` also negates the outputs of MLPs 4 and 5."""
    ma, mb, mc = mats
    layers = 3 if variant == "reference" else 2
    return [TargetMLP(w, layers, negate_output=(i >= 3 and variant == "negated"))
            for i, w in enumerate((ma, mb, mc, -mb, -mc))]


def sample_inputs(rng: np.random.Generator, dist: str, n: int, d: int, mix_a: np.ndarray,
                  noise_std: float = float(np.sqrt(0.1))) -> np.ndarray:
    if dist == "normal":
        return rng.standard_normal((n, d))
    if dist == "normal-4":
        return 2.0 * rng.standard_normal((n, d))
    if dist == "correlated":
        cov = 0.5 * mix_a @ mix_a.T + 0.1 * np.eye(d)
        return rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    if dist == "uniform":
        return rng.uniform(-2.0, 2.0, (n, d))
    if dist == "laplace-noise":
        return rng.laplace(0.0, 1.0, (n, d)) + rng.normal(0.0, noise_std, (n, d))
    raise ValueError(dist)


def sample_mixture(rng: np.random.Generator, dists: tuple[str, ...], n: int, d: int, mix_a: np.ndarray,
                   noise_std: float = float(np.sqrt(0.1))) -> np.ndarray:
    """n inputs split as evenly as possible over `dists`, shuffled."""
    counts = [n // len(dists) + (i < n % len(dists)) for i in range(len(dists))]
    x = np.concatenate([sample_inputs(rng, dist, c, d, mix_a, noise_std)
                        for dist, c in zip(dists, counts, strict=True)])
    return x[rng.permutation(n)]


def transform(kind: str, x: np.ndarray, mats: list[np.ndarray], mlp_variant: str) -> np.ndarray:
    """The five targets of each input: (n, 5, d)."""
    if kind == "linear":
        ident, ma, mb = mats
        outs = [x @ ident.T, x @ ma.T, x @ mb.T, -(x @ ma.T), -(x @ mb.T)]
    else:
        outs = [mlp(x) for mlp in target_mlps(mlp_variant, mats)]
    return np.stack(outs, axis=1)


def generate(kind: str, setting: str, p: SyntheticParams) -> dict[str, np.ndarray]:
    """All arrays of one synthetic task; the same (kind, setting, params) gives identical arrays."""
    rng = np.random.default_rng([p.seed, TRANSFORMS.index(kind), SETTINGS.index(setting)])
    d = p.d
    if kind == "linear":
        mats = [np.eye(d), random_rotation(rng, d), random_rotation(rng, d)]
    elif p.mlp_variant == "reference":
        mats = reference_rotations(rng, d)
    else:
        mats = list(orthogonal_rotations(rng, d))
    mix_a = rng.standard_normal((d, d))
    if p.inputs == "harness":
        mix_a = mix_a / np.sqrt(d)
    noise_std = 0.1 if p.inputs == "reference" else float(np.sqrt(0.1))
    train_d: tuple[str, ...]
    test_d: tuple[str, ...]
    if setting == "single":
        train_d, test_d = ("normal",), ("normal",)
    elif setting == "multi":
        train_d, test_d = DISTRIBUTIONS, DISTRIBUTIONS
    else:
        train_d, test_d = DISTRIBUTIONS[:4], DISTRIBUTIONS[4:]
    x_train = sample_mixture(rng, train_d, p.n_train, d, mix_a, noise_std)
    x_test = sample_mixture(rng, test_d, p.n_test, d, mix_a, noise_std)
    y_train = transform(kind, x_train, mats, p.mlp_variant)
    y_test = transform(kind, x_test, mats, p.mlp_variant)
    negatives = rng.standard_normal((p.n_negatives, d))
    lo, hi = target_range(p.m)
    if (lo, hi) != (M_TARGETS, M_TARGETS):
        return _varying(x_train, x_test, y_train, y_test, negatives, lo, hi, rng)
    docs = np.concatenate([y_train.reshape(-1, d), y_test.reshape(-1, d), negatives]).astype(np.float32)
    perm = rng.permutation(len(docs))  # row perm[j] of `docs` goes to corpus row j
    where = np.empty_like(perm)
    where[perm] = np.arange(len(perm))
    n_tr = p.n_train * M_TARGETS
    return {
        "corpus": docs[perm],
        "train_x": x_train.astype(np.float32),
        "test_x": x_test.astype(np.float32),
        "train_targets": where[:n_tr].reshape(p.n_train, M_TARGETS),
        "test_targets": where[n_tr : n_tr + p.n_test * M_TARGETS].reshape(p.n_test, M_TARGETS),
    }


def _varying(x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
             negatives: np.ndarray, lo: int, hi: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`generate`'s arrays when input x keeps only its first c(x) targets: target rows are −1 past c(x)."""
    d = x_train.shape[1]
    keep_tr = np.arange(M_TARGETS)[None, :] < target_counts(x_train, lo, hi)[:, None]
    keep_te = np.arange(M_TARGETS)[None, :] < target_counts(x_test, lo, hi)[:, None]
    docs = np.concatenate([y_train[keep_tr], y_test[keep_te], negatives.reshape(-1, d)]).astype(np.float32)
    perm = rng.permutation(len(docs))
    where = np.empty_like(perm)
    where[perm] = np.arange(len(perm))
    n_tr = int(keep_tr.sum())
    rows_tr = np.full(keep_tr.shape, -1, dtype=np.int64)
    rows_te = np.full(keep_te.shape, -1, dtype=np.int64)
    rows_tr[keep_tr] = where[:n_tr]
    rows_te[keep_te] = where[n_tr:n_tr + int(keep_te.sum())]
    return {"corpus": docs[perm], "train_x": x_train.astype(np.float32), "test_x": x_test.astype(np.float32),
            "train_targets": rows_tr, "test_targets": rows_te}


def _targets(rows: np.ndarray) -> Targets:
    """One single-document cluster per target row; −1 marks a target the input does not have (varying m)."""
    n, m = rows.shape
    keep = rows.reshape(-1) >= 0
    return Targets(
        np.repeat(np.arange(n, dtype=np.int64), m)[keep],
        np.tile(np.arange(m, dtype=np.int64), n)[keep],
        rows.reshape(-1).astype(np.int64)[keep],
        (rows >= 0).sum(axis=1).astype(np.int64),
    )


class SyntheticTask(Task):
    """One of the six synthetic settings; `name` is synthetic-<transform>-<setting>."""

    default_ks = (10, 100)

    def __init__(self, params: SyntheticParams, name: str) -> None:
        super().__init__(params, name)
        _, self.kind, self.setting = name.split("-")

    def cache_key(self) -> str:
        params = dict(self.params.__dict__)
        params.pop("scale")  # the sizes it resolved to are in the key; the scale itself changes nothing else
        # parameters added later keep the key (and cached file) they had before when at their defaults
        for key, default in (("m", str(M_TARGETS)), ("inputs", "harness")):
            if params.get(key) == default:
                params.pop(key)
        return stable_hash(["synthetic", GENERATOR_VERSION, self.kind, self.setting, params])

    def planned_cache_bytes(self) -> int:
        """What a first run writes to the cache: the task file and the corpus index (0 when the task is cached)."""
        p: SyntheticParams = self.params
        if (cache_root() / "synthetic" / f"{self.cache_key()}.npz").exists():
            return 0
        n_docs = (p.n_train + p.n_test) * M_TARGETS + p.n_negatives
        task_file = 4 * p.d * (n_docs + p.n_train + p.n_test) + 8 * M_TARGETS * (p.n_train + p.n_test)
        return task_file + 4 * p.d * n_docs

    def load(self) -> TaskData:
        p: SyntheticParams = self.params
        key = self.cache_key()
        def build() -> dict[str, np.ndarray]:
            with STDERR.status(f"generating {self.name} (d={p.d}, {p.n_train}+{p.n_test} queries)"):
                return generate(self.kind, self.setting, p)

        rebuild = {"rebuild": {"task": self.name, "task_params": dict(p.__dict__)}}  # for `bench cache verify --fix`
        arrays = load_or_build_arrays("synthetic", key, build, required=ARRAYS, info=rebuild)
        corpus = Corpus(ids=[f"d{i}" for i in range(len(arrays["corpus"]))], fingerprint=array_hash(arrays["corpus"]),
                        vectors=arrays["corpus"])
        splits = {
            name: Split(name, [f"{name}-{i}" for i in range(len(arrays[f"{name}_x"]))],
                        _targets(arrays[f"{name}_targets"]), vectors=arrays[f"{name}_x"])
            for name in ("train", "test")
        }
        info = {
            "transform": self.kind, "setting": self.setting, "generator_version": GENERATOR_VERSION,
            "mlp_variant": p.mlp_variant if self.kind == "mlp" else None, "inputs": p.inputs,
            "scale": p.scale_label(),
            "m": M_TARGETS if target_range(p.m) == (M_TARGETS, M_TARGETS) else p.m,
            "target_representatives": "one doc per cluster (each cluster is a single target vector)",
            "audit": {"ran": False, "dropped": []},  # generated data: no question text or passage sets to leak
        }
        return TaskData(self.name, corpus, splits, modality="vector", info=info)


for _kind in TRANSFORMS:
    for _setting in SETTINGS:
        register_task(
            f"synthetic-{_kind}-{_setting}",
            description=f"synthetic vectors, {_kind} transformations, {_setting} input distribution(s), m = 5",
            kind="synthetic",
            params=SyntheticParams,
        )(SyntheticTask)
