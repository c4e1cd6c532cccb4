#!/usr/bin/env bash
# One GPU call for the round-3 GAN figures (docs/benchmarks/gan.md) and the GANs of the augmentation
# benchmark (docs/benchmarks/augmentation.md), all in float32 like the CPU path:
#   - bench/augmentation.py --until generate for the six MNIST / Fashion-MNIST regimes, one process each;
#   - bench/gan_sweep.py with bench/gan_sweep_jobs3.json (time to quality against the textbook loop,
#     stabiliser ablations, Fashion-MNIST seeds, the 32x32 RGB folder) on the regimes' 100/class datasets.
# Usage: bench/device_round3.sh DATA_DIR OUT_DIR
#   DATA_DIR holds mnist/ and fashion/ (the IDX files) and rgb32.parquet (bench/rgb_folder.py, then ingest).
# Environment: DEVICE (default cuda), SECONDS_LEFT (default 470), STEPS_SCALE (default 1; trial runs on a CPU),
# GAN_STEPS (regime GAN steps, default GanConfig's), SWEEP_ARGS (more gan_sweep.py options).
set -u
data=$1
out=$2
left=${SECONDS_LEFT:-470}
device=${DEVICE:-cuda}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc
  python3 -c "import torch; print('torch', torch.__version__)"; } > "$out/env.log"
for regime in mnist-imb mnist-10 mnist-100 fashion-imb fashion-10 fashion-100; do
    timeout "$left" python3 bench/augmentation.py --regimes "$regime" --until generate --device "$device" --threads 1 \
        --gan-set '{"amp": false}' ${GAN_STEPS:+--gan-steps $GAN_STEPS} --mnist "$data/mnist" --fashion "$data/fashion" \
        --out "$work/aug" > "$work/aug_$regime.log" 2>&1 &
done
for _ in $(seq 300); do
    [ -f "$work/aug/mnist-100/dataset.parquet" ] && [ -f "$work/aug/fashion-100/dataset.parquet" ] && break
    sleep 1
done
timeout "$((left - 10))" python3 bench/gan_sweep.py --dataset "mnist=$work/aug/mnist-100/dataset.parquet" \
    --dataset "fashion=$work/aug/fashion-100/dataset.parquet" --dataset "rgb=$data/rgb32.parquet" \
    --jobs bench/gan_sweep_jobs3.json --device "$device" --workers 11 --deadline "$((left - 30))" \
    --steps-scale "${STEPS_SCALE:-1}" ${SWEEP_ARGS:-} --out "$work/sweep" > "$out/sweep.log" 2>&1 &
wait
cat "$work"/aug_*.log > "$out/regimes.log"
tar czf "$out/regimes.tgz" -C "$work/aug" --exclude=checkpoints --exclude=dataset.parquet .
cp "$work/sweep/sweep.jsonl" "$out/" 2>/dev/null
tar czf "$out/sweep_files.tgz" -C "$work/sweep" --exclude=checkpoints .
ls -la "$out"
rm -rf "$work"
