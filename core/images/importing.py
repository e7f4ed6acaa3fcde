"""Image datasets on their way in: a ZIP (or a table naming files in one) checked, labelled, split and described.

Three layouts (`ImageOptions.layout`):
- "folders": one folder per class (torchvision's ImageFolder); train/ val/ validation/ test/ folders above the
  class folders give the split, and a split they leave out is cut from train as the fractions say;
- "table": a CSV/Parquet (inside the ZIP, or uploaded beside it) with a column of paths inside the ZIP and a
  label column; images it does not name are left out;
- "unlabelled": every image, without labels, for the Label page.
Every image is decoded once here (so a bad file is found now, not in training); a file that cannot be read is
listed by name and stops the import unless the user chose to skip such files. Only the frame and each image's
key and size are kept in memory: the bytes are read again, one file at a time, when the dataset is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.mapping import as_text, require_columns
from core.data.splits import split_by_label
from core.data.storage import ROW_ID, content_digest
from core.data.types import DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.images import HEIGHT, IMAGE, IMAGES_DIR, PATH, TASK, WIDTH
from core.images.archive import ImageArchive, count, listing
from core.images.store import DecompressionBomb, ImageError, check_image, image_key

LAYOUTS = ("folders", "table", "unlabelled")
# Folder names that say a split (case does not matter); anything else above the images is a class.
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "test": "test", "testing": "test"}
MIN_UNLABELLED = 4  # as for texts: fewer cannot make a labelled version with two classes in every split


@dataclass(frozen=True)
class ImageOptions:
    layout: str = "folders"  # one of LAYOUTS
    image_col: str | None = None  # "table": the column of paths inside the ZIP
    label_col: str | None = None  # "table": the column of labels
    skip_bad: bool = False  # leave out files that are not readable images (listed) instead of refusing the upload
    drop_duplicates: bool = False  # exact duplicates (same bytes): keep the first
    drop_rare_classes: bool = False  # classes too small for every split: drop instead of failing

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise DatasetError(f"unknown image layout {self.layout!r}; expected one of {', '.join(LAYOUTS)}")


@dataclass
class _Findings:
    """What the checks found beside the frame, for the dataset's stats."""

    bad_files: list[dict[str, str]] = field(default_factory=list)  # skipped: {"path", "reason"}
    duplicate_groups: list[list[str]] = field(default_factory=list)  # paths of images with the same bytes
    duplicates: int = 0  # images that repeat an earlier one


@dataclass(frozen=True)
class ArchiveImages:
    """Writes the images of a prepared dataset into its new folder: each distinct file once, named by its hash."""

    archive: ImageArchive
    members: tuple[tuple[int, str], ...]  # (index in archive.members, key), one per key

    def __call__(self, folder: Path) -> None:
        target = folder / IMAGES_DIR
        target.mkdir()
        chosen = [self.archive.members[i] for i, _ in self.members]
        for (member, data), (_, key) in zip(self.archive.each(chosen), self.members, strict=True):
            if isinstance(data, ImageError) or not key.startswith(hashlib.sha256(data).hexdigest()):
                raise DatasetError(f"{self.archive.filename}: {member.path} changed while it was imported; "
                                   "upload it again")
            (target / key).write_bytes(data)


def prepare_images(table: ParsedTable, archive: ImageArchive, options: ImageOptions,
                   split: SplitConfig | None = None) -> PreparedDataset:
    """Check, label and split the images of `archive` as `options` say; a DatasetError names what is wrong."""
    split = split or SplitConfig()
    name, warnings, found = archive.filename, [], _Findings()
    if options.layout == "table":
        chosen = _from_table(table, archive, options, warnings)
    else:
        chosen = pd.DataFrame({"member": archive.file_indices(), "label": None, "split": None})
    frame = _checked(archive, chosen.reset_index(drop=True), options, warnings, found)
    if options.layout == "folders":
        frame = _from_folders(archive, frame)
    elif options.layout == "unlabelled":
        frame = frame.assign(label=None, split="train")
    frame = _duplicates(name, frame, options, warnings, found)
    if options.layout == "unlabelled":
        if len(frame) < MIN_UNLABELLED:
            raise DatasetError(f"{name}: {count(len(frame), 'distinct image')}; at least {MIN_UNLABELLED} are "
                               "needed to label and train on")
    else:
        frame = _classes(name, frame, split, options, warnings)
        frame = _split(name, frame, split)
    frame = frame.sort_values(PATH, kind="stable").reset_index(drop=True)
    frame[ROW_ID] = np.arange(len(frame), dtype=np.int64)
    stats = _stats(name, frame, warnings, found)
    unique = frame.drop_duplicates(IMAGE)
    files = ArchiveImages(archive, tuple(zip(unique["member"].astype(int), unique[IMAGE], strict=True)))
    out = frame[[ROW_ID, IMAGE, "label", "split", PATH, WIDTH, HEIGHT]].copy()
    out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
    mapping = {"image": options.image_col if options.layout == "table" else IMAGE,
               "label": options.label_col if options.layout == "table" else None,
               "unlabelled": options.layout == "unlabelled", "layout": options.layout,
               "split": {"fractions": list(split.fractions), "seed": split.seed, "method": split.method},
               "format": "ZIP of images", "options": asdict(options)}
    return PreparedDataset(
        task=TASK, frame=out, mapping=mapping, stats=stats, warnings=warnings, encoding=None,
        source_filename=name, content_hash=content_digest(out[[IMAGE] if mapping["unlabelled"] else [IMAGE, "label"]]),
        notes=list(table.notes), files=files)


def _from_table(table: ParsedTable, archive: ImageArchive, options: ImageOptions,
                warnings: list[str]) -> pd.DataFrame:
    """The manifest's rows as (member, label): every named path must be in the ZIP; empty labels are dropped."""
    require_columns(table, {"image": options.image_col, "label": options.label_col})
    paths = as_text(table.frame[options.image_col]).str.replace("\\", "/", regex=False)
    labels = as_text(table.frame[options.label_col])
    index = _path_index(archive, table)
    members = paths.map(lambda p: index.get(_clean(p)))
    missing = members.isna() & (paths != "")
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        raise DatasetError(f"{table.filename}: {count(int(missing.sum()), 'path')} in column "
                           f"'{options.image_col}' name no file of {archive.filename} ({table.rows(rows)}: "
                           f"{listing(paths.iloc[rows].tolist())}); paths are relative to the ZIP's top folder")
    empty = (paths == "") | (labels == "")
    if empty.all():
        raise DatasetError(f"{table.filename}: no row has both an image path and a label")
    if empty.any():
        warnings.append(f"{table.filename}: dropped {count(int(empty.sum()), 'row')} with an empty path or label "
                        f"({table.rows(np.flatnonzero(empty.to_numpy()))})")
    kept = ~empty.to_numpy()
    named = set(members[kept].astype(int))
    left_out = len(archive.file_indices()) - len(named)
    if left_out > 0:
        warnings.append(f"{archive.filename}: {left_out} files the table does not name were left out")
    return pd.DataFrame({"member": members[kept].astype(int).to_numpy(), "label": labels[kept].to_numpy(),
                         "split": None})


def _path_index(archive: ImageArchive, table: ParsedTable) -> dict[str, int]:
    """Each file by its path in the ZIP, and by its path from the table's own folder when the table is inside."""
    index = {m.path: i for i, m in enumerate(archive.members)}
    manifest = getattr(table.payload, "manifest", None)  # core.images.reading.ImageUpload: the table's member
    folder = archive.members[manifest].parts[:-1] if manifest is not None else ()
    if folder:
        n = len(folder)
        index.update({"/".join(m.parts[n:]): i for i, m in enumerate(archive.members) if m.parts[:n] == folder})
    return index


def _clean(path: str) -> str:
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def _checked(archive: ImageArchive, chosen: pd.DataFrame, options: ImageOptions, warnings: list[str],
             findings: _Findings) -> pd.DataFrame:
    """Decode each chosen file once: its key, size and format; unreadable ones refused (or skipped: listed)."""
    if chosen.empty:
        raise DatasetError(f"{archive.filename}: the ZIP holds no image files (JPEG, PNG, WebP, BMP or GIF)")
    members = [archive.members[i] for i in chosen["member"].drop_duplicates()]
    found: dict[int, tuple[str, int, int]] = {}
    bad: list[tuple[str, str]] = []
    index = {id(m): i for i, m in enumerate(archive.members)}
    for member, data in archive.each(members):
        try:
            if isinstance(data, ImageError):
                raise data
            info = check_image(data, member.path)
        except DecompressionBomb as exc:
            raise DatasetError(f"{archive.filename}: {exc}; PIL's limit is a safeguard, not a setting to raise "
                               "for an upload") from None
        except ImageError as exc:
            bad.append((member.path, str(exc).removeprefix(f"{member.path}: ")))
            continue
        found[index[id(member)]] = (image_key(data, info.format), info.width, info.height)
    if bad and not options.skip_bad:
        raise DatasetError(f"{archive.filename}: {count(len(bad), 'file', 'is')} not a readable image: "
                           f"{_bad_listing(bad)}; remove or fix them, or skip them (--skip-bad-images; on the "
                           "Datasets page 'Skip unreadable files')")
    if bad:
        warnings.append(f"{archive.filename}: skipped {count(len(bad), 'unreadable file')}: "
                        f"{_bad_listing(bad)}")
    kept = chosen[chosen["member"].isin(found)].copy()
    if kept.empty:
        raise DatasetError(f"{archive.filename}: none of its files is a readable image")
    kept[IMAGE] = [found[i][0] for i in kept["member"]]
    kept[WIDTH] = np.array([found[i][1] for i in kept["member"]], dtype=np.int64)
    kept[HEIGHT] = np.array([found[i][2] for i in kept["member"]], dtype=np.int64)
    kept[PATH] = [archive.members[i].path for i in kept["member"]]
    findings.bad_files = [{"path": p, "reason": r} for p, r in bad[:100]]
    return kept


def _bad_listing(bad: list[tuple[str, str]]) -> str:
    return listing([f"{path} ({reason})" for path, reason in bad])


def _from_folders(archive: ImageArchive, frame: pd.DataFrame) -> pd.DataFrame:
    """Label and split from each image's folders: [split/]class/.../file, below one common top folder if any."""
    parts = [archive.members[i].parts for i in frame["member"]]
    depth = _common_depth(parts)
    splits, labels, loose = [], [], []
    for path in parts:
        rest = path[depth:]
        given = SPLIT_FOLDERS.get(rest[0].lower()) if len(rest) > 1 else None
        if given:
            rest = rest[1:]
        splits.append(given)
        labels.append(rest[0] if len(rest) > 1 else None)
        if len(rest) < 2:
            loose.append("/".join(path))
    name = archive.filename
    if loose:
        raise DatasetError(f"{name}: {count(len(loose), 'image', 'is')} not inside a class folder "
                           f"({listing(loose)}); the ZIP needs one folder per class (optionally inside train/, "
                           "val/, test/ folders), or upload it as unlabelled images")
    with_split = [s is not None for s in splits]
    if any(with_split) and not all(with_split):
        outside = [p for p, s in zip(frame[PATH], splits, strict=True) if s is None]
        raise DatasetError(f"{name}: {count(len(outside), 'image', 'is')} outside the train/val/test folders "
                           f"({listing(outside)}) while the others are inside them; put every class folder in a "
                           "split folder, or none")
    if any(with_split) and "train" not in splits:
        raise DatasetError(f"{name}: the split folders hold no train/ folder (found "
                           f"{', '.join(sorted(set(map(str, splits))))}); the model needs training images")
    return frame.assign(label=labels, split=splits)


def _common_depth(parts: list[tuple[str, ...]]) -> int:
    """How many top folders every image shares (an archive of one folder 'photos/...'), split folders excepted;
    a class folder always stays above each file."""
    depth = 0
    while all(len(p) > depth + 2 for p in parts) and len({p[depth] for p in parts}) == 1 \
            and parts[0][depth].lower() not in SPLIT_FOLDERS:
        depth += 1
    return depth


def _duplicates(name: str, frame: pd.DataFrame, options: ImageOptions, warnings: list[str],
                findings: _Findings) -> pd.DataFrame:
    """Report images whose bytes repeat (with their files); drop all but the first when asked."""
    repeated = frame[frame.duplicated(IMAGE, keep=False)]
    if repeated.empty:
        return frame
    groups = [g[PATH].tolist() for _, g in repeated.groupby(IMAGE, sort=False)]
    n_extra = sum(len(g) - 1 for g in groups)
    shown = listing([" = ".join(g[:3]) + (" = …" if len(g) > 3 else "") for g in groups], 3)
    if options.layout != "unlabelled":
        conflicting = [g[PATH].tolist() for _, g in repeated.groupby(IMAGE, sort=False) if g["label"].nunique() > 1]
        if conflicting:
            warnings.append(f"{name}: {count(len(conflicting), 'image')} under different labels: "
                            f"{listing([' vs '.join(g[:2]) for g in conflicting], 3)}")
    findings.duplicate_groups, findings.duplicates = groups[:100], n_extra
    if options.drop_duplicates or options.layout == "unlabelled":  # labelling the same picture twice is waste
        warnings.append(f"{name}: dropped {count(n_extra, 'exact duplicate image')} (same bytes), keeping the first "
                        f"of each: {shown}")
        frame = frame.drop_duplicates(IMAGE, keep="first")
    else:
        warnings.append(f"{name}: {count(n_extra, 'image')} repeating another exactly (same bytes): {shown}; the 'drop "
                        "duplicates' option keeps one of each")
    return frame


def _classes(name: str, frame: pd.DataFrame, split: SplitConfig, options: ImageOptions,
             warnings: list[str]) -> pd.DataFrame:
    """At least two classes, each with enough images for the splits it must appear in (or dropped when asked)."""
    given = frame["split"].notna().any()
    need = 2 if given else sum(1 for f in split.fractions if f > 0)
    counts = frame["label"].value_counts()
    rare = counts[counts < max(2, need)]
    untrained = [] if not given else sorted(set(frame["label"]) - set(frame.loc[frame["split"] == "train", "label"]))
    if (len(rare) or untrained) and not options.drop_rare_classes:
        if len(rare):
            label = rare.index[0]
            files = frame.loc[frame["label"] == label, PATH].tolist()
            more = f" (and {len(rare) - 1} more such classes)" if len(rare) > 1 else ""
            raise DatasetError(f"{name}: class '{label}' has only {rare.iloc[0]} image(s) ({listing(files)}){more}; "
                               f"each class needs at least {max(2, need)}. Add images, or drop such classes "
                               "(option 'drop rare classes')")
        files = frame.loc[frame["label"] == untrained[0], PATH].tolist()
        raise DatasetError(f"{name}: class '{untrained[0]}' has no training images (only {listing(files)}); put "
                           "some in train/, or drop such classes (option 'drop rare classes')")
    dropped = sorted(set(rare.index) | set(untrained))
    if dropped:
        frame = frame[~frame["label"].isin(dropped)]
        warnings.append(f"{name}: dropped {count(len(dropped), 'class')} too small for every split "
                        f"({listing(list(map(str, dropped)))})")
    if frame["label"].nunique() < 2:
        found = ", ".join(f"'{c}'" for c in frame["label"].unique()[:1]) or "none"
        raise DatasetError(f"{name}: {frame['label'].nunique()} class ({found}); at least 2 classes are needed "
                           "(one folder per class)")
    return frame


def _split(name: str, frame: pd.DataFrame, split: SplitConfig) -> pd.DataFrame:
    """Splits the folders gave are kept; the ones they leave out are cut from train, stratified by label."""
    frame = frame.reset_index(drop=True)
    if frame["split"].isna().all():
        frame["split"] = split_by_label(frame["label"], split.fractions, split.seed)
    else:
        present = set(frame["split"])
        f_train, f_val, f_test = split.fractions
        cut = (f_train, f_val if "validation" not in present else 0.0, f_test if "test" not in present else 0.0)
        if cut[1] or cut[2]:
            train = np.flatnonzero((frame["split"] == "train").to_numpy())
            total = sum(cut)
            labels = frame["label"].iloc[train].reset_index(drop=True)
            frame.loc[train, "split"] = split_by_label(labels, [c / total for c in cut], split.seed)
    return frame


def _stats(name: str, frame: pd.DataFrame, warnings: list[str], findings: _Findings) -> dict[str, Any]:
    repeated = frame[frame.duplicated(IMAGE, keep=False)]
    leaked = [g[PATH].tolist() for _, g in repeated.groupby(IMAGE, sort=False) if g["split"].nunique() > 1]
    if leaked:
        warnings.append(f"{name}: {count(len(leaked), 'image')} in more than one split (leakage): "
                        f"{listing([' = '.join(g[:2]) for g in leaked], 3)}; drop duplicates to avoid it")
    labelled = frame[frame["label"].notna()]
    classes = {str(k): int(v) for k, v in labelled["label"].value_counts().items()}
    per_split = {s: {str(k): int(v) for k, v in g.value_counts().items()}
                 for s, g in labelled.groupby("split")["label"]}
    if classes and (ratio := max(classes.values()) / min(classes.values())) >= 10:
        warnings.append(f"{name}: classes are imbalanced: the largest is {ratio:.0f}x the smallest")
    sizes = {dim: {"min": int(frame[dim].min()), "median": float(frame[dim].median()), "max": int(frame[dim].max())}
             for dim in (WIDTH, HEIGHT)}
    return {"images": len(frame), "distinct_images": int(frame[IMAGE].nunique()), "classes": classes,
            "classes_per_split": per_split, "unlabelled": bool(labelled.empty),
            "duplicates": findings.duplicates, "duplicate_groups": findings.duplicate_groups,
            "leaked_images": len(leaked), "leaked": leaked[:100], "bad_files": findings.bad_files, "sizes": sizes,
            "formats": {str(k): int(v) for k, v in frame[IMAGE].str.rsplit(".", n=1).str[-1].value_counts().items()},
            }
