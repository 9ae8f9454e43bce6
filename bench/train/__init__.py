"""Training of query encoders (AMER, Single-Query): config, data, objectives, distribution, hooks, the loop."""

from bench.train.checkpoint import checkpoint_key, checkpoint_path, load_checkpoint, save_checkpoint
from bench.train.config import SAMPLING_CAP, SamplingParams, TrainConfig, TrainParams
from bench.train.data import TrainingExamples, gather_rows
from bench.train.loop import Trainer, TrainResult
from bench.train.loss import matched_infonce
from bench.train.objectives import get_objective, objective_names, register_objective
from bench.train.schedule import SAMPLING_MODES, linear_warmup_decay, sampling_probability

__all__ = [
    "SAMPLING_CAP", "SAMPLING_MODES", "SamplingParams", "TrainConfig", "TrainParams", "TrainResult", "Trainer",
    "TrainingExamples", "checkpoint_key", "checkpoint_path", "gather_rows", "get_objective", "linear_warmup_decay",
    "load_checkpoint", "matched_infonce", "objective_names", "register_objective", "sampling_probability",
    "save_checkpoint",
]
