#!/bin/bash
# Issue 13's GPU measurements as one prepared call (see ../shared/gpu/README.md for carrying wheels and the model):
#   bash .gpu/run.sh bash bench/gpu_checks.sh [N_TRAIN]
# CUDA-marked tests and the device-assumption tests first, then training throughput (ours vs HF Trainer fp32 and
# bf16) at batch 32 and 256 on MiniLM and a BERT-base-sized model, then serving against transformers.pipeline.
# Writes JSON next to the log in ${OUT:-/tmp}/gpu-checks/.
set -u
N=${1:-8192}
DEST=${OUT:-/tmp}/gpu-checks
mkdir -p "$DEST"
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
python3 -m pytest -q -m cuda tests/test_feed.py tests/test_gpu_batch.py 2>&1 | tail -5
python3 -m pytest -q tests/test_feed.py "tests/test_predict.py::test_each_family_loads_and_predicts" 2>&1 | tail -3
for B in 32 256; do
  python3 bench/train_throughput.py --device cuda --n "$N" --batch-size "$B" --rounds 3 \
    --variants ours,trainer,trainer_bf16 --json "$DEST/train_minilm_b$B.json" 2>&1 | grep -v -i warn
done
python3 bench/train_throughput.py --device cuda --arch bert-base --n "$((N / 2))" --batch-size 32 --rounds 1 \
  --variants ours,ours_bf16,trainer,trainer_bf16 --json "$DEST/train_bertbase_b32.json" 2>&1 | grep -v -i warn
python3 bench/inference.py --device cuda --train-rows 2000 --texts 4000 --single 300 > "$DEST/inference.json"
tail -c 2000 "$DEST/inference.json"
