"""Split protocols for interactions: per-item stratified, leave-last-out by time, or the dataset's own column.

Each returns (train, test) frames; split_interactions picks one from a RecommenderConfig. validation_split then
holds a validation part out of train (the score a hyperparameter search optimises, never the test split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.recs.config import RecommenderConfig
from core.recs.models import RecommenderError


def stratified_item_split(frame: pd.DataFrame, ratio: float = 0.75, by: str = "item",
                          seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random split stratified per `by`, as Microsoft Recommenders' python_stratified_split (same draws)."""
    data = frame.copy()
    np.random.seed(seed)  # the reference implementation draws from the global generator
    data["_random"] = np.random.rand(len(data))
    data = data.sort_values([by, "_random"])
    groups = data.groupby(by, sort=False)
    count = groups[by].transform("count")
    rank = groups.cumcount() + 1
    in_train = rank <= np.round(ratio * count)
    data = data.drop(columns="_random")
    return data[in_train], data[~in_train]


def leave_last_out(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's most recent interaction is the test set (users with one interaction stay in train)."""
    if "timestamp" not in frame.columns:
        raise RecommenderError("leave_last_out needs a timestamp column; this dataset has none")
    data = frame.reset_index(drop=True).sort_values(["user", "timestamp"], kind="stable")
    last = data.groupby("user").cumcount(ascending=False) == 0
    many = data.groupby("user")["item"].transform("count") > 1
    test_mask = last & many
    return data[~test_mask], data[test_mask]


def split_interactions(frame: pd.DataFrame, cfg: RecommenderConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames under the config's protocol; the dataset's own split column is used only by 'dataset'."""
    frame = frame.drop(columns=[c for c in ("split",) if cfg.split_protocol != "dataset" and c in frame.columns])
    if cfg.split_protocol == "stratified_item":
        train, test = stratified_item_split(frame, cfg.train_ratio, "item", cfg.seed)
    elif cfg.split_protocol == "leave_last_out":
        train, test = leave_last_out(frame)
    else:
        # The stored validation split is folded into train: recommenders here do not early-stop on it.
        train = frame[frame["split"].isin(["train", "validation"])]
        test = frame[frame["split"] == "test"]
    if train.empty or test.empty:
        raise RecommenderError(f"the {cfg.split_protocol} split left an empty train or test set "
                               f"({len(train)} / {len(test)} interactions)")
    return train.reset_index(drop=True), test.reset_index(drop=True)


VALIDATION_KEEP = 0.9  # per user, this share of the training interactions is fitted; the rest scores validation


def validation_split(frame: pd.DataFrame, train: pd.DataFrame, cfg: RecommenderConfig
                     ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(fit, validation) out of `train`, the same way the protocol cut the test split: the dataset's own validation
    rows, each user's last training interaction (by time), or a tenth of each user's interactions at random.
    Validation is None when nothing sensible is left to hold out (then the run reports no validation score)."""
    if cfg.split_protocol == "dataset":
        if "split" not in frame.columns or not (frame["split"] == "validation").any():
            return train, None
        fit, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    elif cfg.split_protocol == "leave_last_out":
        fit, validation = leave_last_out(train)
    else:
        fit, validation = stratified_item_split(train, VALIDATION_KEEP, "user", cfg.seed)
    if fit.empty or validation.empty or not set(validation["user"]) & set(fit["user"]):
        return train, None
    return fit.reset_index(drop=True), validation.reset_index(drop=True)
