#!/usr/bin/env bash
# Every experiment, then docs/RESULTS.md. Run from anywhere; options go to every script, e.g.
#   experiments/run_all.sh                  # 3 seeds each: about 2.5 hours on 2 CPU cores
#   experiments/run_all.sh --seeds 0        # one seed each: about 50 minutes
#   experiments/run_all.sh --smoke          # seconds; results under experiments/results/smoke/
# Finished runs are not trained again, so an interrupted run_all.sh resumes when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
for experiment in frame_prediction fp_objective pretraining backbone_baseline; do
    python -m "experiments.$experiment" "$@"
done
case " $* " in
    *" --smoke "*) python -m experiments.make_results --results-dir experiments/results/smoke --out experiments/results/smoke/RESULTS.md ;;
    *) python -m experiments.make_results ;;
esac
