"""Per-pixel classifiers as architectures: ``random_forest`` and ``gradient_boosting``, LightGBM
tree ensembles over per-pixel features (:mod:`landcover.pixel`).

They are no networks: ``landcover train`` fits them with
:func:`landcover.pixel.train_pixel_bundle` on the same prepared dataset (same pixels, per-pixel
weights, splits), and their bundles go through the same ``classify`` and ``evaluate``. They take
exactly the training number of dates (one feature column per band and date). The ``train.model``
network keys (filters, layers ...) do not apply to them. Their ``builder`` gives the LightGBM
parameters (``(number of features, number of classes, seed) -> dict``); the settings were
measured on real data (``benchmarks/pixel_models.py``). This module stays free of LightGBM.
"""

from __future__ import annotations

from landcover.models.base import Architecture


def random_forest_params(num_features: int, num_classes: int, seed: int) -> dict:
    """A random forest like scikit-learn's RandomForestClassifier (100 trees, landcover.pixel):
    bagging about a bootstrap's share of the pixels for every tree, about sqrt(P) features tried
    at every split, trees of at most 256 leaves of at least 2 pixels (on maipo and nc as good
    as 1024 or 4096 leaves of 1 pixel, and faster to fit and to predict)."""
    share = min(1.0, max(1, round(num_features ** 0.5)) / max(1, num_features))
    return {"boosting": "rf", "bagging_fraction": 0.632, "bagging_freq": 1,
            "feature_fraction_bynode": share, "num_leaves": 256, "max_depth": -1,
            "min_data_in_leaf": 2, "min_sum_hessian_in_leaf": 1e-6, "lambda_l2": 0.0}


def gradient_boosting_params(num_features: int, num_classes: int, seed: int) -> dict:
    """Gradient-boosted trees: learning rate 0.05, 31 leaves, 80 % of the features and pixels per
    tree, rounds chosen by early stopping on the validation split (landcover.pixel)."""
    return {"boosting": "gbdt", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20,
            "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
            "lambda_l2": 1.0}


ARCHITECTURES = (
    Architecture("random_forest", random_forest_params, variable_dates=False, downsamples=False,
                 summary="a per-pixel random forest (LightGBM, 100 trees) on every band of "
                         "every date; exactly the training number of dates", keys=(),
                 pixel=True),
    Architecture("gradient_boosting", gradient_boosting_params, variable_dates=False,
                 downsamples=False,
                 summary="per-pixel gradient-boosted trees (LightGBM, early stopping on the "
                         "validation split) on the same features as random_forest; exactly the "
                         "training number of dates", keys=(), pixel=True),
)
