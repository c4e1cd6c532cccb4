#!/usr/bin/env bash
# The figures of issue 26 side by side in one run: GAN images/s against the textbook loop (and TFLOP/s),
# the evaluation stage stacked against one by one, a tuning study's trials concurrent against one at a time,
# and `ganaug run -c bench/configs/mnist100.yaml` with each stage's seconds. Every figure is taken on the
# device given and, after it, on the CPU (the same bench, smaller where noted), so nothing on CPU regressed.
#
# Usage (from the project root):
#   bench/gpu.sh [OUT_DIR]            # on a CUDA machine: full sizes on cuda, then the CPU figures
#   bench/gpu.sh --quick [OUT_DIR]    # tiny sizes on the CPU only (digits): a check that every piece runs
# Environment: DEVICE (default cuda; cpu when there is no GPU), SKIP_PIPELINE=1 skips `ganaug run`,
# SKIP_CPU=1 skips the CPU figures after the device's, SKIP_GAN=1 the GAN throughput (minutes on a loaded CPU).
set -u
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
out=${1:-data/bench/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
figures=$out/figures.jsonl
: > "$figures"
device=${DEVICE:-cuda}
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=cpu
if [ "$quick" = 1 ]; then device=cpu; fi
mnist=../shared/datasets/mnist
mnist100=$out/runs/mnist100
if [ "$quick" = 0 ] && [ ! -f "$mnist100/dataset.parquet" ]; then
    ganaug ingest --source idx --path "$mnist/train-images-idx3-ubyte.gz" --labels "$mnist/train-labels-idx1-ubyte.gz" \
        --test-path "$mnist/t10k-images-idx3-ubyte.gz" --test-labels "$mnist/t10k-labels-idx1-ubyte.gz" \
        --train-per-class 100 --runs-root "$out/runs" --run-id mnist100 > "$out/ingest.log" 2>&1 || echo "ingest failed: see $out/ingest.log"
fi

section() { echo; echo "== $1"; }

bench_on() {  # DEVICE SIZE(full|small|quick)
    local on=$1 size=$2 data=() gan_steps=300 rounds=2 eval_args=() tune_args=()
    [ -f "$mnist100/dataset.parquet" ] && data=(--dataset "$mnist100/dataset.parquet")
    case $size in
        full)  eval_args=(--protocols real,classic,augmented,synthetic --seeds 3 --steps 2000)
               tune_args=("${data[@]}" --trials 8 --steps 375) ;;
        small) gan_steps=100; rounds=1
               eval_args=(--protocols real,classic --seeds 2 --steps 200)
               tune_args=("${data[@]}" --trials 2 --steps 100 --classifier-steps 100) ;;
        quick) data=(); gan_steps=20; rounds=1; eval_args=(--quick); tune_args=(--quick) ;;
    esac
    section "GAN images/s on $on, batch 64 and 512, against the textbook loop (bench/gan_throughput.py)"
    local batches="64 512"
    [ "$size" = quick ] && batches=64
    [ "${SKIP_GAN:-0}" = 1 ] && batches="" && echo "skipped (SKIP_GAN=1)"
    for batch in $batches; do
        local settings="{\"batch_size\": $batch}"
        [ "$on" = cuda ] && settings="{\"batch_size\": $batch, \"amp\": true, \"compile\": \"auto\"}"
        python3 bench/gan_throughput.py "${data[@]}" --device "$on" --steps "$gan_steps" --rounds "$rounds" --set "$settings" 2>&1 \
            | grep -v "^\s*$" | tail -4
    done
    section "evaluation runs on $on: stacked against one by one (bench/evaluate_stacked.py)"
    python3 bench/evaluate_stacked.py --device "$on" "${eval_args[@]}" --json "$figures" 2>&1 | tail -4
    section "tuning study on $on: trials concurrent against one at a time (bench/tune_concurrent.py)"
    python3 bench/tune_concurrent.py --device "$on" "${tune_args[@]}" --json "$figures" 2>&1 | tail -2
}

pipeline_on() {  # DEVICE: ganaug run on MNIST 100/class, then each stage's seconds from run.json
    local on=$1 run_id="gpu-bench-$1-$(date +%s)"
    section "ganaug run -c bench/configs/mnist100.yaml on $on"
    local started=$SECONDS
    CUDA_VISIBLE_DEVICES=$([ "$on" = cpu ] && echo "" || echo "${CUDA_VISIBLE_DEVICES:-0}") \
        ganaug run -c bench/configs/mnist100.yaml --runs-root "$out/runs" --cache-dir "$out/cache" --run-id "$run_id" \
        > "$out/pipeline_$on.log" 2>&1 || echo "ganaug run failed on $on: see $out/pipeline_$on.log"
    echo "end to end: $((SECONDS - started)) s"
    python3 - "$out/runs/$run_id/run.json" <<'PY'
import json, sys
stages = json.load(open(sys.argv[1])).get("stages", {})
print(" | ".join(f"{name} {entry.get('seconds', float('nan')):.0f} s" for name, entry in stages.items()))
PY
}

{
    echo "bench/gpu.sh $(date -u +%FT%TZ), device $device, quick=$quick"
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA GPU')"
    if [ "$quick" = 1 ]; then
        bench_on cpu quick
        section "ganaug run -c bench/configs/mnist100.yaml: skipped with --quick (minutes on a CPU)"
    else
        bench_on "$device" full
        [ "${SKIP_PIPELINE:-0}" = 1 ] || pipeline_on "$device"
        if [ "$device" != cpu ] && [ "${SKIP_CPU:-0}" != 1 ]; then
            echo; echo "==== the CPU figures of the same bench (smaller sizes: the same sizes take hours on a CPU)"
            bench_on cpu small
        fi
    fi
    echo; echo "figures as JSON lines: $figures"
} 2>&1 | tee "$out/gpu_bench.log"
