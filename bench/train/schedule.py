"""Schedules of training: how often AMER feeds its own predictions (scheduled sampling), and the learning rate."""

from __future__ import annotations

SAMPLING_MODES = ("scheduled", "predicted", "teacher")
SAMPLING_CAP = 0.8  # the one place this default is typed (docs/architecture.md §6: p = min(0.8, step / total))


def sampling_probability(step: int, total: int, mode: str = "scheduled", cap: float = SAMPLING_CAP,
                         srm: float = 1.0) -> float:
    """Probability of feeding the model's own previous prediction (instead of a target) at a training step.

    - `scheduled` (the method): p = min(cap, srm · step / total), cap = SAMPLING_CAP (0.8) and the multiplier
      srm = 1 by default — teacher forcing at the start, then a linear ramp that reaches the cap at step
      cap·total/srm and stays there (the reference's example script uses srm = 10: the cap from 8% of the steps).
    - `predicted` (ablation): p = 1, always the model's own predictions, as at inference.
    - `teacher` (ablation): p = 0, always the targets (pure teacher forcing).

    `step` counts from 0 to total − 1.
    """
    if total <= 0:
        raise ValueError(f"total must be > 0, got {total}")
    if mode == "scheduled":
        return min(cap, srm * max(step, 0) / total)
    if mode == "predicted":
        return 1.0
    if mode == "teacher":
        return 0.0
    raise ValueError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")


def linear_warmup_decay(step: int, total: int, warmup: float = 0.05) -> float:
    """Learning-rate multiplier: linear warm-up over the first `warmup` fraction of steps, then linear decay to 0.

        w = max(1, round(warmup · total));  f(s) = (s + 1) / w  for s < w,  else  (total − s) / (total − w)
    """
    if total <= 0:
        raise ValueError(f"total must be > 0, got {total}")
    w = max(1, round(warmup * total))
    if step < w:
        return (step + 1) / w
    if total == w:
        return 1.0
    return max(0.0, (total - step) / (total - w))
