"""The command-line options that several commands share, each defined once with one meaning and one help text.

Use them as annotations with the default in the signature: `results_dir: ResultsDir = Path("results")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Task = Annotated[str, typer.Option("--task", help="a registered task (see `bench list tasks`)")]
Tasks = Annotated[str, typer.Option("--task", help="one or more registered tasks, comma-separated")]
TaskParams = Annotated[list[str] | None, typer.Option(
    "--task-param", "-t", help="task parameter key=value (repeatable), e.g. -t d=64")]
Retriever = Annotated[str, typer.Option(
    "--retriever", help="retriever or system name(s), comma-separated, e.g. minilm, 'minilm+mmr', 'amer@rrf(k=60)'")]
RetrieverParams = Annotated[list[str] | None, typer.Option(
    "--retriever-param", "-r",
    help="stage parameter key=value or stage.key=value (repeatable), e.g. -r amer.steps=100 -r mmr.grid=0.5,0.9")]
Seed = Annotated[int, typer.Option(
    "--seed", min=0, help="seed (≥ 0) for everything the command samples (initialisation, batches, negatives, "
    "resamples)")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda (all GPUs) or cuda:N")]
Retrain = Annotated[bool, typer.Option("--retrain", help="train again even when a matching checkpoint exists")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="where run files are written and read")]
Runs = Annotated[list[Path] | None, typer.Option(
    "--run", help="explicit run files (repeatable) instead of the newest run of each system")]
Cutoffs = Annotated[str | None, typer.Option("--k", help="cutoffs, e.g. 10,100")]
Measure = Annotated[str, typer.Option("--measure", help="the measure: MRECALL or Recall (see `bench list metrics`)")]
Output = Annotated[Path | None, typer.Option("--output", help="write to this file instead of the terminal")]
Page = Annotated[Path, typer.Option("--output", "--out", help="the HTML page to write")]
OutDir = Annotated[Path, typer.Option("--out-dir", help="the folder the files are written to")]
Baseline = Annotated[str | None, typer.Option(
    "--baseline", help="the baseline system (default: single-query when present)")]
