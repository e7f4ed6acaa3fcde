#!/bin/bash
# Issue 13's GPU checks as one prepared call (see ../shared/gpu/README.md for carrying wheels and the model):
#   bash ../shared/gpu/prepare.sh cleanlab termcolor   # here, once: writes .gpu/ (git-ignored), 56 MB
#   bash .gpu/run.sh bash bench/gpu_checks.sh [N_TRAIN]  # there: device run, carry [".gpu"], timeout_s 600
# Rehearse it on a CPU box first (same steps, tiny sizes, every import and path exercised; ~15 min on 2 cores):
#   GPU_CHECKS_DEVICE=cpu GPU_CHECKS_TOTAL_S=1800 GPU_CHECKS_STEP_SCALE=5 bash bench/gpu_checks.sh 128
# The steps share one deadline (GPU_CHECKS_TOTAL_S, default 540 s, inside the device tool's 600 s a command) and
# run most-wanted first, each under its own limit, so a slow step costs the ones after it, never the figures
# already taken:
#   1. training throughput, ours vs HF Trainer fp32 and bf16, MiniLM at batch 32 (+ the LSTM) and 256;
#   2. serving against transformers.pipeline on the same GPU;
#   3. a BERT-base-sized model (random weights from its config) at batch 32 and 256;
#   4. every test that runs without the UI wheels (streamlit, plotly, setfit are not carried), CUDA-marked ones
#      included: the suite must pass on a GPU machine too;
#   5. the product as a user runs it: `protolab datasets add` + `protolab train --wait` (worker process, batch from
#      the memory probe) on the whole tweets corpus.
# Logs and JSON go to ${OUT:-/tmp}/gpu-checks/: 8 files, the most the device tool brings back.
set -u
N=${1:-8192}
DEVICE=${GPU_CHECKS_DEVICE:-cuda}
DEST=${OUT:-/tmp}/gpu-checks
TOTAL_S=${GPU_CHECKS_TOTAL_S:-540}
STEP_SCALE=${GPU_CHECKS_STEP_SCALE:-1}  # the rehearsal on a CPU gives each step this many times its GPU limit
mkdir -p "$DEST"
exec > >(tee "$DEST/log.txt") 2>&1
step() { echo; echo "== $(date +%T) (${SECONDS} s in) $*"; }
# Run "$@" for at most $1 seconds (times STEP_SCALE), or what is left of the deadline if that is less; SIGINT
# first, so pytest still writes its report and a benchmark its finished rounds, then SIGKILL 20 s later.
bounded() {
  local want=$(($1 * STEP_SCALE)) left=$((TOTAL_S - SECONDS)) code; shift
  [ "$left" -lt "$want" ] && want=$((left > 1 ? left : 1))
  timeout -s INT -k 20 "$want" "$@"; code=$?
  [ "$code" = 124 ] && echo "(stopped at its ${want} s limit)" >&2
  return "$code"
}
quiet() { grep -v -i -E "warn|Loading weights|train_runtime"; }

step versions
python3 - <<'EOF'
import platform, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, GPU {gpu}")
EOF

step "1. training throughput, MiniLM, batch 32 (+ the LSTM at its batch 64)"
bounded 150 python3 bench/train_throughput.py --device "$DEVICE" --n "$N" --batch-size 32 --rounds 3 \
  --variants ours,trainer,trainer_bf16,lstm --json "$DEST/train_minilm_b32.json" 2>&1 | quiet
step "1. training throughput, MiniLM, batch 256"
bounded 90 python3 bench/train_throughput.py --device "$DEVICE" --n "$N" --batch-size 256 --rounds 2 \
  --variants ours,trainer,trainer_bf16 --json "$DEST/train_minilm_b256.json" 2>&1 | quiet

step "2. serving vs transformers.pipeline"
bounded 120 python3 bench/inference.py --device "$DEVICE" --train-rows 2000 --texts "$((N / 2))" \
  --single 300 2>&1 > "$DEST/inference.json" | quiet

step "3. training throughput, BERT-base-sized (random weights), batch 32 and 256"
for B in 32 256; do
  bounded 60 python3 bench/train_throughput.py --device "$DEVICE" --arch bert-base --n "$((N / 2))" \
    --batch-size "$B" --rounds 1 --variants ours,ours_bf16,trainer,trainer_bf16 \
    --json "$DEST/train_bertbase_b$B.json" 2>&1 | quiet
done

step "4. tests (tests needing wheels that are not carried are only counted)"
XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n $(($(nproc) > 8 ? 8 : 2))")
PROTOLAB_HOME=$(mktemp -d) bounded 150 python3 -m pytest -q -p no:cacheprovider $XDIST -m "not e2e and not postgres" \
  --continue-on-collection-errors --junitxml="$DEST/tests.xml" tests > /dev/null 2>&1
echo "pytest exit $?"
pkill -f "core.runs.worker" 2>/dev/null  # runs of tests stopped at the limit would train on into the next step
if [ -s "$DEST/tests.xml" ]; then python3 bench/gpu_tests_summary.py "$DEST/tests.xml" | tail -c 6000
else echo "no test report"; fi

step "5. the product: protolab train on the tweets (worker process, batch from the probe)"
export PROTOLAB_HOME=$(mktemp -d)
CSV=$PROTOLAB_TWEETS_CSV
if [ "$DEVICE" = cpu ]; then  # the rehearsal: 1,500 tweets, so a CPU finishes within the step's limit
  CSV=$PROTOLAB_HOME/tweets-sample.csv
  python3 -c "import pandas as pd, sys; pd.read_csv(sys.argv[1], encoding='cp1252', encoding_errors='replace')\
.sample(1500, random_state=0).to_csv(sys.argv[2], index=False)" "$PROTOLAB_TWEETS_CSV" "$CSV"
fi
python3 -m core.cli datasets add "$CSV" --name tweets --task classification --text-col text --label-col sentiment
bounded 120 python3 -m core.cli train --dataset tweets --model transformer --epochs 1 \
  --device "$DEVICE" --wait --json > "$DEST/product_train.json"
[ -s "$DEST/product_train.json" ] && python3 - "$DEST/product_train.json" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
print({k: run.get(k) for k in ("run_id", "status", "device", "duration_s", "error")})
print("metrics:", {k: round(v, 4) if isinstance(v, float) else v for k, v in run["metrics"].items()
                   if isinstance(v, (int, float, str))})
print("config:", run["config"])
for event in run["events"][-8:]:
    print("event:", event)
EOF
step done
