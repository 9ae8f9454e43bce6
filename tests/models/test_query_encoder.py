"""The query encoder's backbone seam: random configs, a pretrained LM from disk, left-padded multi-token prefixes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.errors import BenchError
from bench.models import BackboneConfig, QueryEncoder, build_backbone, count_parameters, token_embeddings


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_random_backbone_follows_its_config(arch: str) -> None:
    torch.manual_seed(0)
    bb = build_backbone(BackboneConfig(arch=arch, width=32, layers=2, heads=4, ffn=48))
    assert bb.config.hidden_size == 32 and bb.config.num_hidden_layers == 2 and bb.config.intermediate_size == 48
    torch.manual_seed(0)
    again = build_backbone(BackboneConfig(arch=arch, width=32, layers=2, heads=4, ffn=48))
    assert all(torch.equal(a, b) for a, b in zip(bb.state_dict().values(), again.state_dict().values(), strict=True))


def test_default_encoder_size_matches_the_cpu_prototype_scale() -> None:
    torch.manual_seed(0)
    model = QueryEncoder(BackboneConfig(), d_query=128, d_doc=128, input_scale=128**-0.5)
    assert 0.3e6 < count_parameters(model) < 0.5e6  # the prototype had 0.43M


def test_pretrained_backbone_loads_from_a_folder(tmp_path) -> None:
    """A later issue plugs a pretrained causal LM by path: the same weights come back, offline."""
    torch.manual_seed(1)
    source = build_backbone(BackboneConfig(arch="llama", width=16, layers=1, heads=2))
    source.save_pretrained(tmp_path / "lm")
    model = QueryEncoder(BackboneConfig(pretrained=str(tmp_path / "lm")), d_query=4, d_doc=8, input_scale=1.0)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items())
    assert isinstance(token_embeddings(model.backbone), torch.nn.Embedding)
    with pytest.raises(BenchError, match="offline"):
        build_backbone(BackboneConfig(pretrained=str(tmp_path / "missing")))


@torch.no_grad()
def test_left_padded_prefix_gives_the_same_vectors_as_the_unpadded_one() -> None:
    """Text prefixes (token embeddings) of different lengths share a batch by left padding plus a mask."""
    torch.manual_seed(2)
    model = QueryEncoder(BackboneConfig(width=16, layers=2, heads=2), d_query=4, d_doc=8, input_scale=1.0).eval()
    long = torch.randn(1, 3, 16)
    short = torch.randn(1, 2, 16)
    padded = torch.cat([torch.zeros(1, 1, 16), short], dim=1)
    batch = torch.cat([long, padded])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    together = model.rollout(batch, 3, prefix_mask=mask)
    torch.testing.assert_close(together[0], model.rollout(long, 3)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[1], model.rollout(short, 3)[0], atol=1e-5, rtol=1e-5)


def test_config_roundtrip_rebuilds_the_same_module() -> None:
    torch.manual_seed(3)
    model = QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), d_query=4, d_doc=8, input_scale=0.5)
    clone = QueryEncoder.from_config(model.config())
    clone.load_state_dict(model.state_dict())
    x = torch.randn(3, 4)
    assert torch.equal(model.eval().generate(x, 4), clone.eval().generate(x, 4))
    assert torch.allclose(F.normalize(model.generate(x, 4), dim=-1), model.generate(x, 4))


def _fed_back(model: QueryEncoder, x: torch.Tensor, teacher: torch.Tensor | None = None,
              use_pred: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """What reaches the input projection and what leaves the output projection while emitting 2 vectors (as at
    inference, or teacher-forced where `use_pred` is False)."""
    fed: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []
    h1 = model.target_proj.register_forward_hook(lambda mod, args, out: fed.append(args[0].clone()))
    h2 = model.out_proj.register_forward_hook(lambda mod, args, out: outs.append(out.clone()))
    vecs = model.rollout(model.vector_prefix(x), 2, teacher=teacher, use_pred=use_pred)
    h1.remove()
    h2.remove()
    return fed, outs, vecs


@torch.no_grad()
def test_raw_feedback_feeds_the_unnormalised_projection() -> None:
    """feedback=raw (the reference's) puts W_out·h itself through the input projection; the default its unit vector.
    Checked on what reaches `target_proj` at inference, and kept through the model's config."""
    torch.manual_seed(3)
    normal = QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), d_query=4, d_doc=8, input_scale=0.5).eval()
    raw = QueryEncoder.from_config({**normal.config(), "feedback": "raw"}).eval()
    raw.load_state_dict(normal.state_dict())
    assert raw.config()["feedback"] == "raw" and QueryEncoder.from_config(raw.config()).feedback == "raw"
    old = {k: v for k, v in normal.config().items() if k != "feedback"}  # a checkpoint from before the option
    assert QueryEncoder.from_config(old).feedback == "normalised"
    x = torch.randn(3, 4)
    for model, unit in ((normal, True), (raw, False)):
        fed, outs, vecs = _fed_back(model, x)
        assert len(fed) == 1 and torch.allclose(vecs.norm(dim=-1), torch.ones(3, 2))  # outputs normalised both ways
        expected = F.normalize(outs[0], dim=-1) if unit else outs[0]
        torch.testing.assert_close(fed[0], expected)
        assert torch.allclose(fed[0].norm(dim=-1), torch.ones(3)) == unit
    # training feeds back the same way where it feeds predictions, and the targets themselves elsewhere
    y = F.normalize(torch.randn(3, 2, 8), dim=-1)
    use_pred = torch.tensor([[True], [False], [True]])
    for model, unit in ((normal, True), (raw, False)):
        fed, outs, _ = _fed_back(model, x, y, use_pred)
        own = F.normalize(outs[0], dim=-1) if unit else outs[0]
        torch.testing.assert_close(fed[0][[0, 2]], own[[0, 2]])
        torch.testing.assert_close(fed[0][1], y[1, 0])
    assert torch.equal(normal.generate(x, 2)[:, 0], raw.generate(x, 2)[:, 0])  # the first vector sees the query only
    assert not torch.allclose(normal.generate(x, 2)[:, 1], raw.generate(x, 2)[:, 1])
    with pytest.raises(ValueError, match="feedback"):
        QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), 4, 8, 0.5, feedback="unit")


# ------------------------------------------------------------------ a frozen reader's token states as the prefix
def _sequence_encoder(residual: bool) -> QueryEncoder:
    torch.manual_seed(0)
    return QueryEncoder(BackboneConfig(width=32, layers=1, heads=4), d_query=12, d_doc=8, input_scale=1.0,
                        query_input="sequence", residual=residual)


def test_token_states_prefix_is_normalised_and_padding_changes_nothing() -> None:
    """Each state enters L2-normalised (its scale is the reader's, not ours), and a left-padded batch gives the
    vectors each query gets alone."""
    model = _sequence_encoder(residual=False).eval()
    torch.manual_seed(1)
    states = torch.randn(1, 5, 12)
    alone = model({"features": states, "attention_mask": torch.ones(1, 5, dtype=torch.long)}, 3)
    scaled = model({"features": 7.0 * states, "attention_mask": torch.ones(1, 5, dtype=torch.long)}, 3)
    assert torch.allclose(alone, scaled, atol=1e-5)
    padded = torch.cat([torch.randn(1, 2, 12), states], dim=1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
    other = torch.randn(1, 7, 12)
    both = model({"features": torch.cat([padded, other]), "attention_mask": torch.cat([mask, torch.ones_like(mask)])},
                 3)
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    with pytest.raises(BenchError, match="takes sequence queries, got vectors"):
        model({"vectors": torch.randn(1, 12)}, 2)


def test_residual_starts_at_the_readers_query_embedding_and_trains_away_from_it() -> None:
    model = _sequence_encoder(residual=True)
    pooled = F.normalize(torch.randn(2, 8), dim=-1)
    inputs = {"features": torch.randn(2, 4, 12), "attention_mask": torch.ones(2, 4, dtype=torch.long),
              "pooled": pooled}
    out = model(inputs, 2)
    assert torch.allclose(out[:, 0], pooled, atol=1e-6) and torch.allclose(out[:, 1], pooled, atol=1e-6)
    target = F.normalize(torch.randn(2, 2, 8), dim=-1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss = -(model(inputs, 2) * target).sum()
        loss.backward()
        opt.step()
    moved = model(inputs, 2)
    assert (moved * target).sum(-1).mean() > (out * target).sum(-1).mean() + 0.3
    again = QueryEncoder.from_config(model.config())
    assert again.query_input == "sequence" and again.residual is True
    with pytest.raises(ValueError, match="residual needs"):
        QueryEncoder(BackboneConfig(width=32, layers=1, heads=4), d_query=12, d_doc=8, input_scale=1.0,
                     residual=True)
