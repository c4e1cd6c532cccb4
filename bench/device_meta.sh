#!/usr/bin/env bash
# Issue 12's held-out benchmark at the full GAN length, on one CUDA machine in one call: Fashion-MNIST
# 100/class tuned cold and warm-started from the committed history of 200-step studies on digits and
# MNIST (docs/benchmarks/meta_fashion_history.parquet, round 3's), every study its own process
# (bench/meta.py --modes), all at once; then the seeds' rows and table (docs/benchmarks/meta.md).
# Usage: bench/device_meta.sh OUT_DIR
# Environment (defaults): SEEDS ("0 1 2"), TRIALS (9), MIN_STEPS (375), MAX_STEPS (3000), BATCH (64),
# PARALLEL (3, trials a study trains at once), WORKERS (processes, as in round 8; threads), DEADLINE (480 s for the studies), DEVICE (cuda),
# CLASSIFIER_STEPS (150), FASHION (folder of the Fashion-MNIST IDX files; default bench/meta.py's),
# WORK (where the studies train; default a temporary folder: only their small files are copied to OUT_DIR).
# A study cut by DEADLINE leaves its finished trials in OUT_DIR/<study>/trials.txt (from its study.db).
# Needs python3 with torch, numpy, pandas, pyarrow, scikit-learn, matplotlib, PyYAML, optuna, pydantic and optuna's
# SQLAlchemy, alembic and Mako (the project is put on PYTHONPATH, not installed). Round 8 of docs/benchmarks/meta.md:
# DEADLINE=525 on one H100, 517 s for the six studies.
set -u
out=$1
work=${WORK:-$(mktemp -d)}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 GANAUG_HISTORY=off
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"; } \
    > "$out/env.log" 2>&1
cat "$out/env.log"
cp docs/benchmarks/meta_fashion_history.parquet "$work/history.parquet"
args=(--suite fashion --trials "${TRIALS:-9}" --min-steps "${MIN_STEPS:-375}" --max-steps "${MAX_STEPS:-3000}"
      --batch-size "${BATCH:-64}" --parallel "${PARALLEL:-3}" --workers "${WORKERS:-processes}" --device "${DEVICE:-cuda}"
      --classifier-steps "${CLASSIFIER_STEPS:-150}" --out "$work")
if [ -n "${FASHION:-}" ]; then args+=(--fashion "$FASHION"); fi
python3 bench/meta.py "${args[@]}" --phases ingest > "$out/ingest.log" 2>&1 || { tail -5 "$out/ingest.log"; exit 1; }
seeds=${SEEDS:-0 1 2}
started=$(date +%s)
for seed in $seeds; do
    for mode in cold warm; do
        timeout "${DEADLINE:-480}" python3 bench/meta.py "${args[@]}" --phases heldout --only-seeds "$seed" --modes "$mode" \
            > "$out/$mode$seed.log" 2>&1 &
    done
done
wait
pkill -f 'multiprocessing.spawn import spawn_main' 2>/dev/null  # trial workers of a study cut by DEADLINE
echo "studies: $(( $(date +%s) - started )) s"
python3 bench/meta.py "${args[@]}" --phases heldout --only-seeds "${seeds// /,}" --modes none > "$out/table.log" 2>&1
cat "$out/table.log"
cp "$work/meta.json" "$out/" 2>/dev/null
for study in "$work"/fashion100/cold* "$work"/fashion100/warm*; do
    [ -d "$study" ] || continue
    name=$(basename "$study")
    mkdir -p "$out/$name"
    cp "$study"/result.json "$study"/tune/trials.parquet "$study"/tune/tune.json "$out/$name/" 2>/dev/null
    for grid in "$study"/tune/trials/*/gan/samples_final.png; do
        [ -f "$grid" ] && cp "$grid" "$out/$name/trial$(basename "$(dirname "$(dirname "$grid")")")_final.png"
    done
    python3 - "$study/tune/study.db" > "$out/$name/trials.txt" 2>&1 <<'EOF'
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = f"sqlite:///{sys.argv[1]}"
for name in optuna.get_all_study_names(storage):
    for trial in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
        print(trial.number, trial.state.name, trial.value, trial.user_attrs.get("warm_from"), dict(trial.intermediate_values))
EOF
done
