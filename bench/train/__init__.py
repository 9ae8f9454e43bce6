"""Training of query encoders (AMER, Single-Query): loss, schedules, the shared loop, checkpoints."""

from bench.train.checkpoint import checkpoint_key, checkpoint_path, load_checkpoint, save_checkpoint
from bench.train.loop import TrainConfig, Trainer, TrainingExamples, TrainResult
from bench.train.loss import matched_infonce
from bench.train.schedule import SAMPLING_MODES, linear_warmup_decay, sampling_probability

__all__ = [
    "SAMPLING_MODES", "TrainConfig", "TrainResult", "Trainer", "TrainingExamples", "checkpoint_key",
    "checkpoint_path", "linear_warmup_decay", "load_checkpoint", "matched_infonce", "sampling_probability",
    "save_checkpoint",
]
