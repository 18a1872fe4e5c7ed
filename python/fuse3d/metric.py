"""The RSNA 2024 Lumbar Spine metric, as Kaggle's scoring notebook and ``fuse3d train`` compute it
(Sources/Train/Training/RSNAMetric.swift), and the weighted-prior baseline the trainer reports beside it.

Needs numpy only.
"""
import numpy as np

CLASS_WEIGHTS = np.array([1.0, 2.0, 4.0])
GROUPS = ("spinal", "foraminal", "subarticular", "any_severe_spinal")
_EPS = np.finfo(np.float64).eps


def _group_of_column(column):
    return (0, 1, 1, 2, 2)[column // 5]


def weighted_prior(labels):
    """The best constant prediction under the metric, from training labels (N, 25), -1 missing: per column the
    class counts (each starting at one) times the weights 1/2/4, normalised. Returns (25, 3).

    >>> weighted_prior([[0] * 25])[0].round(3).tolist()
    [0.25, 0.25, 0.5]
    """
    labels = np.asarray(labels).reshape(-1, 25)
    counts = np.ones((25, 3))
    for k in range(3):
        counts[:, k] += (labels == k).sum(axis=0)
    weighted = counts * CLASS_WEIGHTS
    return weighted / weighted.sum(axis=1, keepdims=True)


def _score(p, y):
    n = y.shape[0]
    group_sum, group_weight = np.zeros(3), np.zeros(3)
    column_sum, column_weight = np.zeros(25), np.zeros(25)
    severe_sum = severe_weight = 0.0
    rows = 0
    clipped = np.clip(p, _EPS, 1 - _EPS)
    normalised = clipped / clipped.sum(axis=2, keepdims=True)  # scikit-learn renormalises each row after clipping
    for s in range(n):
        spinal_labelled, severe_label, max_weight, max_severe = False, False, 0.0, 0.0
        for c in range(25):
            t = int(y[s, c])
            if t not in (0, 1, 2):
                continue
            w = CLASS_WEIGHTS[t]
            loss = -np.log(normalised[s, c, t])
            g = _group_of_column(c)
            group_sum[g] += w * loss
            group_weight[g] += w
            column_sum[c] += w * loss
            column_weight[c] += w
            rows += 1
            if g == 0:
                spinal_labelled = True
                severe_label = severe_label or t == 2
                max_weight = max(max_weight, w)
                max_severe = max(max_severe, float(p[s, c, 2]))
        if spinal_labelled:
            q = min(max(max_severe, _EPS), 1 - _EPS)
            severe_sum += max_weight * -np.log(q if severe_label else 1 - q)
            severe_weight += max_weight

    def ratio(a, b):
        return float(a / b) if b > 0 else float("nan")

    out = {name: ratio(group_sum[g], group_weight[g]) for g, name in enumerate(GROUPS[:3])}
    out["any_severe_spinal"] = ratio(severe_sum, severe_weight)
    out["score"] = (out["spinal"] + out["foraminal"] + out["subarticular"] + out["any_severe_spinal"]) / 4
    out["loss"] = ratio(group_sum.sum(), group_weight.sum())
    out["column_losses"] = [ratio(a, b) for a, b in zip(column_sum, column_weight)]
    out["labelled_rows"] = rows
    return out


def rsna_score(probabilities, labels, train_labels=None):
    """The RSNA 2024 score of `probabilities` (N, 25, 3: normal/mild, moderate, severe per label column, in the
    shards' column order; or N x 75) against `labels` (N, 25; 0/1/2, -1 missing). Lower is better.

    For each condition group (spinal canal; left+right neural foraminal; left+right subarticular) scikit-learn's
    ``log_loss`` over the labelled rows with sample weights 1/2/4 by true class, plus ``any_severe_spinal`` (per
    study: the largest P(severe) over the spinal levels against "any level severe", weighted by the worst class);
    the score is the unweighted mean of the four. Probabilities are clipped to [eps, 1 - eps] (float64 eps).

    Returns a dict: score, spinal, foraminal, subarticular, any_severe_spinal, loss (every labelled row),
    column_losses (25), labelled_rows; with `train_labels` (N', 25) also ``baseline``, the same dict for the
    weighted prior of those labels predicted for every study, and ``prior`` (25, 3) — as ``fuse3d train`` reports.

    >>> import numpy as np
    >>> labels = np.zeros((2, 25), dtype=int)
    >>> round(rsna_score(np.full((2, 25, 3), 1 / 3), labels)["score"], 6)   # (3 ln 3 + ln 1.5) / 4
    0.925325
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    n = y.shape[0]
    p = p.reshape(n, 25, 3)
    y = y.reshape(n, 25)
    out = _score(p, y)
    if train_labels is not None:
        prior = weighted_prior(train_labels)
        out["baseline"] = _score(np.broadcast_to(prior, (n, 25, 3)), y)
        out["prior"] = prior
    return out
