"""Scheduled sampling and the learning-rate schedule (bench/train/schedule.py), and that rollouts obey p."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.models import BackboneConfig, QueryEncoder
from bench.train.schedule import linear_warmup_decay, sampling_probability


def test_scheduled_probability_ramps_linearly_to_the_cap() -> None:
    total = 1000
    ps = [sampling_probability(s, total) for s in range(total)]
    assert ps[0] == 0.0
    assert ps[250] == pytest.approx(0.25)
    assert ps[500] == pytest.approx(0.5)
    assert ps[799] == pytest.approx(0.799)
    assert all(p == 0.8 for p in ps[800:])
    assert all(b >= a for a, b in zip(ps, ps[1:], strict=False))
    assert all(p == pytest.approx(min(0.8, s / total)) for s, p in enumerate(ps))
    assert sampling_probability(50, 100, cap=0.3) == pytest.approx(0.3)


def test_ablation_modes_are_constant() -> None:
    assert {sampling_probability(s, 10, "predicted") for s in range(10)} == {1.0}
    assert {sampling_probability(s, 10, "teacher") for s in range(10)} == {0.0}
    with pytest.raises(ValueError, match="sampling mode"):
        sampling_probability(0, 10, "sometimes")
    with pytest.raises(ValueError, match="total"):
        sampling_probability(0, 0)


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    total = 200  # 5% warm-up = 10 steps
    f = [linear_warmup_decay(s, total, 0.05) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:10], f[1:10], strict=False))
    assert all(b < a for a, b in zip(f[10:], f[11:], strict=False))
    assert f[-1] == pytest.approx(1 / 190)
    assert linear_warmup_decay(total, total, 0.05) == 0.0


def _encoder(seed: int = 0) -> QueryEncoder:
    torch.manual_seed(seed)
    return QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), d_query=6, d_doc=8, input_scale=0.5).eval()


def _batch(b: int = 4, m: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 6, generator=g), F.normalize(torch.randn(b, m, 8, generator=g), dim=-1)


@torch.no_grad()
def test_teacher_forced_rollout_equals_one_pass_over_the_target_sequence() -> None:
    """p = 0 feeds the targets: the cached step-by-step rollout equals one causal pass over [prefix, y1, y2]."""
    model = _encoder()
    x, y = _batch()
    rolled = model.rollout(model.vector_prefix(x), 3, teacher=y, use_pred=torch.zeros(4, 2, dtype=torch.bool))
    seq = torch.cat([model.vector_prefix(x), model.target_proj(y[:, :2])], dim=1)
    hidden = model.backbone(inputs_embeds=seq).last_hidden_state
    one_pass = F.normalize(model.out_proj(hidden), dim=-1)
    torch.testing.assert_close(rolled, one_pass, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_predicted_rollout_equals_generation_and_differs_from_teacher_forcing() -> None:
    model = _encoder()
    x, y = _batch()
    free = model.generate(x, 3)
    rolled = model.rollout(model.vector_prefix(x), 3, teacher=y, use_pred=torch.ones(4, 2, dtype=torch.bool))
    forced = model.rollout(model.vector_prefix(x), 3, teacher=y, use_pred=torch.zeros(4, 2, dtype=torch.bool))
    torch.testing.assert_close(rolled, free)
    assert torch.equal(free[:, 0], forced[:, 0])  # the first vector sees only the query
    assert not torch.allclose(free[:, 1:], forced[:, 1:])
    assert torch.allclose(free.norm(dim=-1), torch.ones(4, 3))


@torch.no_grad()
def test_rollout_feeds_predictions_where_the_batch_says_and_the_share_tracks_p() -> None:
    """The batch draws, per example and step, whether to feed the prediction (share ≈ p); the rollout obeys it."""
    from bench.data.task import Split, Targets
    from bench.train.data import TrainingExamples, draw_batch

    model = _encoder()
    b = 400
    x = torch.randn(b, 6, generator=torch.Generator().manual_seed(2))
    y = F.normalize(torch.randn(b, 2, 8, generator=torch.Generator().manual_seed(3)), dim=-1)
    split = Split("train", [str(i) for i in range(b)], Targets.from_nested([[[0], [1]]] * b), vectors=x.numpy())
    batch = draw_batch(TrainingExamples.from_split(split), np.arange(b), 50, 0.5, np.random.default_rng(4))
    use_pred = torch.from_numpy(batch.use_pred)
    assert use_pred.shape == (b, 1)
    free = model.generate(x, 2)
    forced = model.rollout(model.vector_prefix(x), 2, teacher=y, use_pred=torch.zeros(b, 1, dtype=torch.bool))
    mixed = model.rollout(model.vector_prefix(x), 2, teacher=y, use_pred=use_pred)
    took_pred = (mixed[:, 1] - free[:, 1]).norm(dim=-1) < 1e-5
    took_teacher = (mixed[:, 1] - forced[:, 1]).norm(dim=-1) < 1e-5
    assert torch.all(took_pred ^ took_teacher)
    assert torch.equal(took_pred, use_pred[:, 0])
    share = took_pred.float().mean().item()
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / b)


def test_srm_multiplies_the_ramp_and_the_cap_still_holds() -> None:
    """p = min(cap, srm·t/T): srm = 10 (the reference's example script) reaches the 0.8 cap at 8% of the steps."""
    total = 1000
    assert sampling_probability(0, total, srm=10) == 0.0
    assert sampling_probability(25, total, srm=10) == pytest.approx(0.25)
    assert sampling_probability(50, total, srm=10) == pytest.approx(0.5)
    assert sampling_probability(79, total, srm=10) == pytest.approx(0.79)
    assert {sampling_probability(s, total, srm=10) for s in range(80, total)} == {0.8}
    assert all(sampling_probability(s, total, srm=1.0) == sampling_probability(s, total) for s in range(total))
    assert sampling_probability(10, 100, cap=0.3, srm=10) == 0.3
