#!/usr/bin/env bash
# Issue 14's comparison, end to end: Single-Query under each multi-positive objective, AMER with fixed m_pred and
# with the learned stop, and never / always / adaptive expansion (LLM keywords from SmolLM2-135M-Instruct served by
# `transformers serve` on loopback, and RM3 PRF). Writes runs under $OUT and prints the `bench compare` tables.
#
#   bash benchmarks/adaptive_query_side.sh [synthetic|limit|ambigqa|all]     (default all; about 2 h on 2 cores)
#
# Trained text systems use SmolLM2 + LoRA for 40 steps: they test the plumbing, not the methods (README).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
B=${BENCH:-.venv/bin/bench}
OUT=${OUT:-results/adaptive-query-side}
PORT=${PORT:-8124}
T=(-r steps=40 -r batch_size=8 -r lr=2e-4 -r eval_every=20 -r val_fraction=0.05 --device cpu)
OBJECTIVES=(rand1 joint summarg lsepair)

synthetic() {
  # d = 128 with 32,000 training inputs, then the acceptance setting d = 32 with 64,000 on two task seeds
  local s=(--task synthetic-linear-single -t m=2..5 -t n_train=32000 --results-dir "$OUT/d128")
  for r in amer 'amer[stop=learned]' 'amer[stop=learned,stop_threshold=0.5]'; do "$B" run "${s[@]}" --retriever "$r"; done
  for o in "${OBJECTIVES[@]}"; do "$B" run "${s[@]}" --retriever single-query -r objective="$o"; done
  "$B" compare --task synthetic-linear-single --results-dir "$OUT/d128" --baseline single-query --k 10,100
  for seed in 0 1; do
    s=(--task synthetic-linear-single -t m=2..5 -t d=32 -t n_train=64000 -t seed=$seed --results-dir "$OUT/d32-seed$seed")
    for r in amer 'amer[stop=learned]' 'amer[stop=learned,stop_threshold=0.5]' single-query; do
      "$B" run "${s[@]}" --retriever "$r"
    done
    "$B" compare --task synthetic-linear-single --results-dir "$OUT/d32-seed$seed" --baseline amer --k 10,100 --ci
  done
}

serve() {  # SmolLM2 behind transformers' OpenAI-compatible server, with continuous batching; stopped on exit
  MODEL=$(.venv/bin/python -c "from bench.models.offline_lm import smollm2_folder; print(smollm2_folder())")
  HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/transformers serve "$MODEL" --host 127.0.0.1 --port "$PORT" \
    --continuous-batching > "$OUT/serve.log" 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 180); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && return; sleep 1; done
  echo "transformers serve did not come up; see $OUT/serve.log" >&2; exit 1
}

text_task() {  # $1 = task, then its task parameters
  local task=$1; shift
  local s=(--task "$task" "$@" --results-dir "$OUT/text")
  local llm=(--llm-base-url "http://127.0.0.1:$PORT/v1" --llm-model "$MODEL" -r concurrency=16)
  "$B" run "${s[@]}" --retriever minilm
  "$B" run "${s[@]}" --retriever minilm --expand llm "${llm[@]}"
  "$B" run "${s[@]}" --retriever minilm --expand adaptive:llm "${llm[@]}"
  "$B" run "${s[@]}" --retriever minilm --expand prf
  "$B" run "${s[@]}" --retriever minilm --expand adaptive:prf
  for o in "${OBJECTIVES[@]}"; do "$B" run "${s[@]}" --retriever single-query -r objective="$o" "${T[@]}"; done
  "$B" run "${s[@]}" --retriever amer "${T[@]}"
  "$B" run "${s[@]}" --retriever 'amer[stop=learned]' "${T[@]}"
  local base='single-query[steps=40,batch_size=8,lr=0.0002,val_fraction=0.05,eval_every=20]'
  for m in MRECALL Recall; do "$B" compare --task "$task" --results-dir "$OUT/text" --baseline "$base" --metric $m; done
}

mkdir -p "$OUT"
case $WHAT in synthetic|all) synthetic ;; esac
case $WHAT in limit|ambigqa|all) serve ;; esac
case $WHAT in limit|all) text_task limit-small -t train_fraction=0.5 ;; esac
case $WHAT in ambigqa|all)
  "$B" data prepare ambigqa
  text_task ambigqa
  # the task's m_pred is 2, every question has at least two answers: let the stop decide up to 5 (inference only)
  "$B" run --task ambigqa --retriever 'amer[stop=learned]' -r m_pred=5 "${T[@]}" --results-dir "$OUT/text"
  "$B" run --task ambigqa --retriever amer -r m_pred=5 "${T[@]}" --results-dir "$OUT/text"
  ;;
esac
