"""Split protocols for interactions: per-item stratified, leave-last-out by time, or the dataset's own column.

Each returns (train, test) frames; split_interactions picks one from a RecommenderConfig.
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
