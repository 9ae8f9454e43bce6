"""The plain-torch backbone (bench/models/tiny.py): the Llama computation, causal, cache- and padding-correct."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from transformers.cache_utils import DynamicCache

from bench.models import BackboneConfig, QueryEncoder, build_backbone, token_embeddings
from bench.models.tiny import TinyCache, TinyConfig, TinyModel
from bench.train.loss import matched_infonce

CFG = BackboneConfig(arch="tiny", width=32, layers=2, heads=4, ffn=48)


def _tiny(seed: int = 0) -> TinyModel:
    torch.manual_seed(seed)
    model = build_backbone(CFG)
    assert isinstance(model, TinyModel)
    return model.eval()


def _pair(seed: int = 0) -> tuple[torch.nn.Module, TinyModel]:
    """A transformers Llama of the same shape and a TinyModel holding its weights."""
    torch.manual_seed(seed)
    llama = build_backbone(BackboneConfig(arch="llama", width=32, layers=2, heads=4, ffn=48)).eval()
    with torch.no_grad():  # norms start at 1 in both: make them differ so a swapped norm would show
        for name, p in llama.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    tiny = _tiny(seed + 1)
    tiny.load_llama_weights(llama)
    return llama, tiny


def test_follows_its_config_and_exposes_what_the_query_encoder_reads() -> None:
    model = _tiny()
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.config.intermediate_size == 48 and len(model.layers) == 2
    assert isinstance(token_embeddings(model), torch.nn.Embedding)
    out = model(inputs_embeds=torch.randn(2, 3, 32))
    assert out.last_hidden_state.shape == (2, 3, 32)
    with pytest.raises(ValueError, match="multiple"):
        TinyConfig(hidden_size=30, num_attention_heads=4)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a, b, c = _tiny(0).state_dict(), _tiny(0).state_dict(), _tiny(1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.qkv.weight"], c["layers.0.qkv.weight"])
    std = float(a["layers.0.qkv.weight"].std())
    assert 0.015 < std < 0.025  # Llama's initialiser, N(0, 0.02²)
    assert torch.equal(a["norm"], torch.ones(32))


@torch.no_grad()
def test_computes_what_transformers_llama_computes_with_the_same_weights() -> None:
    llama, tiny = _pair()
    x = torch.randn(3, 6, 32)
    torch.testing.assert_close(tiny(inputs_embeds=x).last_hidden_state, llama(inputs_embeds=x).last_hidden_state,
                               atol=1e-5, rtol=1e-5)
    # step by step with a cache, as the query encoder's rollout drives it
    cl, ct = DynamicCache(), DynamicCache()
    name = "cache" if "cache" in inspect.signature(llama.forward).parameters else "past_key_values"  # as the rollout
    for part in (slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 6)):
        want = llama(inputs_embeds=x[:, part], use_cache=True, **{name: cl}).last_hidden_state
        got = tiny(inputs_embeds=x[:, part], past_key_values=ct, use_cache=True).last_hidden_state
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cache_kind", ["dynamic", "tiny"])
@torch.no_grad()
def test_incremental_decoding_with_a_cache_equals_the_full_causal_forward(cache_kind: str) -> None:
    model = _tiny(2)
    x = torch.randn(4, 7, 32)
    full = model(inputs_embeds=x).last_hidden_state
    cache = DynamicCache() if cache_kind == "dynamic" else TinyCache()
    parts = []
    for part in (slice(0, 3), slice(3, 4), slice(4, 5), slice(5, 7)):
        parts.append(model(inputs_embeds=x[:, part], past_key_values=cache, use_cache=True).last_hidden_state)
    assert cache.get_seq_length() == 7
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_a_later_input_never_changes_an_earlier_output() -> None:
    model = _tiny(3)
    x = torch.randn(2, 6, 32)
    base = model(inputs_embeds=x).last_hidden_state
    for t in range(6):
        y = x.clone()
        y[:, t] += torch.randn(2, 32)
        out = model(inputs_embeds=y).last_hidden_state
        assert torch.equal(out[:, :t], base[:, :t])  # bitwise: positions before t never see position t
        assert not torch.allclose(out[:, t], base[:, t])


@torch.no_grad()
def test_left_padding_with_mask_and_positions_behaves_like_the_unpadded_sequence() -> None:
    model = _tiny(4)
    long, short = torch.randn(1, 4, 32), torch.randn(1, 2, 32)
    batch = torch.cat([long, torch.cat([torch.randn(1, 2, 32), short], dim=1)])  # row 1: 2 pads (garbage) first
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(inputs_embeds=batch, attention_mask=mask, position_ids=pos, past_key_values=cache,
                use_cache=True).last_hidden_state
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out[0], model(inputs_embeds=long).last_hidden_state[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1, 2:], model(inputs_embeds=short).last_hidden_state[0], atol=1e-5, rtol=1e-5)
    # one more step after the padded prefix, as the rollout continues
    nxt = torch.randn(2, 1, 32)
    step = model(inputs_embeds=nxt, attention_mask=torch.cat([mask, mask.new_ones(2, 1)], 1),
                 position_ids=pos[:, -1:] + 1, past_key_values=cache, use_cache=True).last_hidden_state
    want_short = model(inputs_embeds=torch.cat([short, nxt[1:]], dim=1)).last_hidden_state[0, -1]
    torch.testing.assert_close(step[1, 0], want_short, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_padded_rollout_through_the_query_encoder_matches_transformers_llama() -> None:
    """The query encoder's own rollout (cache, mask, positions) gives the same vectors on either backbone."""
    llama, tiny = _pair(5)
    torch.manual_seed(6)
    a = QueryEncoder(BackboneConfig(arch="llama", width=32, layers=2, heads=4, ffn=48), 4, 8, 1.0).eval()
    b = QueryEncoder(BackboneConfig(arch="tiny", width=32, layers=2, heads=4, ffn=48), 4, 8, 1.0).eval()
    a.backbone = llama
    b.load_state_dict({k: v for k, v in a.state_dict().items() if not k.startswith("backbone.")}, strict=False)
    b.backbone = tiny
    prefix = torch.randn(2, 3, 32)
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    torch.testing.assert_close(b.rollout(prefix, 4, prefix_mask=mask), a.rollout(prefix, 4, prefix_mask=mask),
                               atol=1e-5, rtol=1e-5)
    x = torch.randn(5, 4)
    torch.testing.assert_close(b.generate(x, 5), a.generate(x, 5), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    model = _tiny(7).train()
    cache = DynamicCache()
    out = [model(inputs_embeds=torch.randn(3, 1, 32), past_key_values=cache, use_cache=True).last_hidden_state
           for _ in range(3)]
    torch.cat(out, 1).square().sum().backward()
    missing = [n for n, p in model.named_parameters() if n != "embed_tokens.weight" and
               (p.grad is None or not p.grad.abs().sum() > 0)]
    assert missing == []


def test_a_few_optimiser_steps_lower_the_matched_loss() -> None:
    """The query encoder on a tiny backbone learns: AdamW on matched InfoNCE of its own rollouts."""
    torch.manual_seed(8)
    model = QueryEncoder(CFG, d_query=8, d_doc=16, input_scale=8**-0.5)
    x = torch.randn(32, 8)
    pos = torch.nn.functional.normalize(torch.randn(32, 3, 16), dim=-1)
    neg = torch.nn.functional.normalize(torch.randn(32, 3, 16), dim=-1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = matched_infonce(model.rollout(model.vector_prefix(x), 3), pos, neg, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.slow
def test_amer_trains_on_a_tiny_backbone_end_to_end(tmp_path) -> None:
    """`-r arch=tiny` through `bench run`: it trains, the validation loss falls, and the record names the arch."""
    from bench.cli import main
    from bench.results.record import find_runs
    from bench.train.checkpoint import load_checkpoint

    args = ["run", "--task", "synthetic-linear-single", "--retriever", "amer", "--device", "cpu",
            "-t", "d=16", "-t", "n_train=300", "-t", "n_test=40", "-t", "n_negatives=500",
            "--results-dir", str(tmp_path)]
    for p in ("arch=tiny", "width=32", "layers=1", "heads=2", "batch_size=32", "steps=150", "eval_every=25",
              "lr=5e-3"):
        args += ["-r", p]
    assert main(args) == 0
    (record_file,) = find_runs(tmp_path, "synthetic-linear-single")
    record = json.loads(record_file.read_text())
    assert record["retriever_params"]["arch"] == "tiny"
    meta = load_checkpoint(record["retriever_info"]["checkpoint"]).meta
    assert meta["model"]["backbone"]["arch"] == "tiny"
    hist = meta["train"]["history"]
    assert meta["train"]["best_val_loss"] < hist[0]["val_loss"] - 1.0
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 1.0
