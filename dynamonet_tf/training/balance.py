"""How much each term of the joint objective shapes the model: gradient-norm shares.

Every ``train.balance_every_steps`` steps a joint run measures the norm of the gradient of
alpha * L_FP and of beta * L_CE on a few groups of variables (the backbone, the filter layer);
each term's share of their sum is logged, and a term that stays below
:data:`MIN_GRADIENT_SHARE` for a whole epoch is warned about once per run.
"""

# Below this share of the gradient norm, a term barely shapes the model.
MIN_GRADIENT_SHARE = 0.01
NORM_PREFIX = "grad_norm_"
TERMS = ("frame_prediction", "classification")


def gradient_shares(norms):
    """``{"share_<term>_of_<group>": fraction}`` from ``grad_norm_<term>_<group>`` norms: each
    term's part of the sum of both terms' gradient norms on a group of variables."""
    fp_prefix = f"{NORM_PREFIX}{TERMS[0]}_"
    shares = {}
    for group in sorted({k.removeprefix(fp_prefix) for k in norms if k.startswith(fp_prefix)}):
        fp = norms[f"{NORM_PREFIX}{TERMS[0]}_{group}"]
        ce = norms[f"{NORM_PREFIX}{TERMS[1]}_{group}"]
        total = fp + ce
        shares[f"share_{TERMS[0]}_of_{group}"] = fp / total if total else 0.0
        shares[f"share_{TERMS[1]}_of_{group}"] = ce / total if total else 0.0
    return shares


def mean_gradient_shares(epoch_rows):
    """``{"share_<term>_of_<group>": mean}`` over a run's epochs: log.csv rows (dicts of
    strings) whose share columns are filled; ``{}`` for a run that measured none."""
    names = sorted({name for row in epoch_rows for name in row if name.startswith("share_")})
    means = {}
    for name in names:
        values = [float(row[name]) for row in epoch_rows if row.get(name) not in (None, "")]
        if values:
            means[name] = sum(values) / len(values)
    return means


class BalanceMonitor:
    """Averages an epoch's gradient shares and warns, once per run and share, when a term's
    share stayed below :data:`MIN_GRADIENT_SHARE` at every measurement of an epoch."""

    def __init__(self, loss_config):
        self.alpha, self.beta = loss_config.alpha, loss_config.beta
        self.warnings = []
        self._warned = set()

    def epoch_logs(self, balance, logs, epoch):
        """The mean of each share over ``balance`` (the epoch's measurements, dicts of
        :func:`gradient_shares`); ``logs`` give the weighted terms for the warning."""
        if not balance:
            return {}
        means = {name: sum(b[name] for b in balance) / len(balance) for name in balance[0]}
        for name in balance[0]:
            if name in self._warned or not all(b[name] < MIN_GRADIENT_SHARE for b in balance):
                continue
            self._warned.add(name)
            term, group = name.removeprefix("share_").split("_of_")
            message = (
                f"warning: in epoch {epoch + 1}, {term.replace('_', ' ')} had less than "
                f"{MIN_GRADIENT_SHARE:.0%} of the gradient norm on the {group.replace('_', ' ')} "
                f"at all {len(balance)} measurements (mean {means[name]:.2%}): with loss.alpha "
                f"{self.alpha:g} and loss.beta {self.beta:g}, alpha * L_FP is "
                f"{logs.get('weighted_frame_prediction_loss', float('nan')):.4g} and beta * L_CE "
                f"{logs.get('weighted_classification_loss', float('nan')):.4g}, so that term "
                "barely shapes the model."
            )
            print(message, flush=True)
            self.warnings.append(message)
        return means
