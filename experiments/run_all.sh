#!/usr/bin/env bash
# Every experiment, then docs/RESULTS.md, from a clean checkout. Run from anywhere:
#   experiments/run_all.sh            # 5 seeds, 2 processes side by side (docs/RESULTS.md: CPU hours)
#   experiments/run_all.sh --smoke    # seeds 0 and 1, about 4 minutes; results under experiments/results/smoke/
# SEEDS="0 1" and JOBS=1 change the seeds and the processes; other options go to every script.
# The benchmark is prepared once, first; then each process trains its seeds (every experiment
# for one seed before the next seed, so that an interrupted run has whole seeds to show), and
# a last pass per experiment gathers every finished run into its results.json. Finished runs
# are not trained again, so an interrupted run_all.sh resumes when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
experiments="frame_prediction fp_objective pretraining backbone_baseline"
seeds="${SEEDS:-0 1 2 3 4}"
jobs="${JOBS:-2}"
case " $* " in *" --smoke "*) jobs=1 seeds="${SEEDS:-0 1}" ;; esac

python -m experiments.datasets "$@"
# Each process gets its share of the cores: the demo model does not fill two.
threads=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))
pids=()
for job in $(seq 0 $((jobs - 1))); do
    mine=$(echo $seeds | tr ' ' '\n' | awk -v n="$jobs" -v j="$job" '(NR - 1) % n == j')
    (
        export TF_NUM_INTRAOP_THREADS=$threads TF_NUM_INTEROP_THREADS=$threads
        for seed in $mine; do
            for experiment in $experiments; do
                python -m "experiments.$experiment" --seeds "$seed" "$@"
            done
        done
    ) &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
for experiment in $experiments; do
    # shellcheck disable=SC2086  # the seeds are words
    python -m "experiments.$experiment" --collect --seeds $seeds "$@"
done
[ "$failed" = 0 ] || { echo "a training process failed: see its output above" >&2; exit 1; }
# Next-frame scores by motion family of the frame-prediction runs on this machine, kept in
# experiments/results/frame_prediction/families.json and rendered into families.md.
case " $* " in *" --smoke "*) ;; *) python -m experiments.frame_families ;; esac
case " $* " in
    *" --smoke "*) python -m experiments.make_results --results-dir experiments/results/smoke --out experiments/results/smoke/RESULTS.md ;;
    *) python -m experiments.make_results ;;
esac
