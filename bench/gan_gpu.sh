#!/usr/bin/env bash
# The GAN benchmarks on one CUDA machine, each stage under its own time limit:
#   1. the tests marked `gpu` (bf16 autocast, torch.compile, resume on CUDA);
#   2. bench/gan_sweep.py: the configurations of bench/gan_sweep_jobs.json at 28x28, in parallel
#      processes, float32 (the CPU path's precision) so that quality matches a CPU training;
#   3. bench/gan_throughput.py at 28x28: fp32, bf16 + channels-last, + torch.compile, and a larger batch.
# Usage: bench/gan_gpu.sh MNIST_DATASET_PARQUET FASHION_DATASET_PARQUET OUT_DIR
# Environment: SWEEP_SECONDS (default 300), WORKERS (default 12), THROUGHPUT_SECONDS (default 150),
# and for a trial run on a CPU: DEVICE (default cuda), JOBS (default bench/gan_sweep_jobs.json),
# SWEEP_ARGS (extra gan_sweep.py options, e.g. "--steps-scale 0.01"), THROUGHPUT_STEPS (default 300).
set -u
mnist=$1
fashion=$2
out=$3
sweep_seconds=${SWEEP_SECONDS:-300}
throughput_seconds=${THROUGHPUT_SECONDS:-150}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
    timeout 90 python3 -m pytest -q -m gpu -p no:cacheprovider tests/gan/test_gan_gpu.py
} > "$out/gpu_tests.log" 2>&1

timeout "$sweep_seconds" python3 bench/gan_sweep.py --dataset "mnist=$mnist" --dataset "fashion=$fashion" \
    --jobs "${JOBS:-bench/gan_sweep_jobs.json}" --device "${DEVICE:-cuda}" --workers "${WORKERS:-12}" \
    --deadline $((sweep_seconds - 20)) --out "$work/sweep" ${SWEEP_ARGS:-} > "$out/sweep.log" 2>&1
cp "$work/sweep/sweep.jsonl" "$out/" 2>/dev/null
cp "$work"/sweep/grid_*.png "$out/" 2>/dev/null

started=$SECONDS
for settings in '{"amp": false}' '{"amp": true}' '{"amp": true, "batch_size": 512}' '{"amp": true, "compile": true}'; do
    left=$((throughput_seconds - (SECONDS - started)))
    [ "$left" -gt 10 ] || break
    timeout "$left" python3 bench/gan_throughput.py --dataset "$mnist" --device "${DEVICE:-cuda}" \
        --steps "${THROUGHPUT_STEPS:-300}" --rounds 2 \
        --set "$settings" >> "$out/throughput.log" 2>&1
done
rm -rf "$work"
