#!/usr/bin/env bash
# One GPU call for issue 14's search-quality plan (docs/benchmarks/nas.md) plus the GPU tests and
# the GAN throughput check (docs/benchmarks/gan.md), on the MNIST 100/class data of the augmentation
# benchmark (dataset.parquet and its GAN's synthetic.parquet).
# Usage: bench/device_nas.sh DATASET SYNTHETIC OUT_DIR
# Environment: DEADLINE (seconds for the search benchmark, default 380), DEVICE (default cuda),
# WORKERS (default 16), SEEDS (default 5), FIRST_SEED (default 0), TRIALS (default 12), STRATEGIES
# (default "evolution random tpe nsga2"; e.g. "evolution random" to remeasure evolution against random).
set -u
dataset=$1
synthetic=$2
out=$3
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1; nproc
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"; } \
    > "$out/env.log"
cat "$out/env.log"
if [ "$device" = cuda ]; then
    timeout 120 python3 -m pytest -m gpu tests/gan/test_gan_gpu.py -q -p no:cacheprovider > "$out/gpu_tests.log" 2>&1
    tail -2 "$out/gpu_tests.log"
fi
timeout 90 python3 bench/gan_throughput.py --dataset "$dataset" --device "$device" --steps 300 --rounds 2 \
    > "$out/gan_throughput.log" 2>&1
cat "$out/gan_throughput.log"
# the full plan: converged full fidelity (2 steps per training image), the full space, 12 trials per
# search scored by the GAN-sample proxy, top 2 retrained, 4 strategies x 5 seeds
python3 bench/nas_proxies.py --dataset "$dataset" --synthetic "$synthetic" --archs 0 \
    --search-fidelity synthetic:50:250 --verify-top 2 --seeds "${SEEDS:-5}" --first-seed "${FIRST_SEED:-0}" --trials "${TRIALS:-12}" --population 4 \
    --strategies ${STRATEGIES:-evolution random tpe nsga2} --workers "${WORKERS:-16}" --device "$device" \
    --out "$out" --deadline "${DEADLINE:-380}" > "$out/nas.log" 2>&1
tail -c 6000 "$out/nas.log"
