"""The images task's reader: an upload (ZIP, or a table naming files in a ZIP) as the table its page previews.

A ZIP becomes the table inside it (a CSV/Parquet at its shallowest level naming the images), or else the
listing of its files with the class and split their folders suggest; the checked archive rides along as the
table's payload. A CSV/Parquet uploaded alone is read as any table: its ZIP of images comes as a second file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.mapping import as_text, label_candidates
from core.data.reading import parse_upload
from core.data.types import DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.images.archive import IMAGE_SUFFIXES, ImageArchive, is_zip, listing, read_archive
from core.images.importing import SPLIT_FOLDERS, ImageOptions, prepare_images
from core.images.store import ImageError

ARCHIVE_FORMAT = "ZIP of images"


@dataclass(frozen=True)
class ImageUpload:
    """The payload of a ZIP's table: the archive, and which of its members the table was read from (if any)."""

    archive: ImageArchive
    manifest: int | None = None  # index in archive.members of the CSV/Parquet naming the images


def read_images(source: bytes | str | Path, filename: str | None = None) -> ParsedTable:
    """Read an upload for the images task (bytes from the page, a path on the CLI), or raise DatasetError."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
    else:
        path = None
    name = filename or "upload"
    data = bytes(source) if path is None else path
    if not is_zip(data):
        if path is not None:
            data = path.read_bytes()
        return parse_upload(data, name)  # a table naming files in a ZIP that comes beside it
    return archive_table(read_archive(data, name))


def archive_table(archive: ImageArchive) -> ParsedTable:
    """The table inside the archive when there is exactly one at its shallowest level, else its file listing."""
    tables = archive.tables()
    shallowest = min((len(m.parts) for m in tables), default=0)
    top = [m for m in tables if len(m.parts) == shallowest]
    notes = [f"skipped {archive.skipped_junk} system files (__MACOSX, .DS_Store, ...)"] if archive.skipped_junk else []
    if len(top) == 1:
        try:
            with archive.open() as zf:
                table = parse_upload(archive.read(zf, top[0]), f"{archive.filename}/{top[0].path}")
        except (DatasetError, ImageError) as exc:  # a stray or broken table: the folders may still say it all
            notes.append(f"{exc}; the table is not used, so the folders give the labels")
        else:
            return ParsedTable(table.frame, archive.filename, f"{ARCHIVE_FORMAT} with {top[0].path}",
                               table.encoding, (*notes, *table.notes), table.header_rows, table.source_rows,
                               payload=ImageUpload(archive, archive.members.index(top[0])))
    elif len(top) > 1:
        notes.append(f"{len(top)} tables in the ZIP ({listing([m.path for m in top])}): none is used, so the folders "
                     "give the labels")
    files = [archive.members[i] for i in archive.file_indices()]
    frame = pd.DataFrame({"path": [m.path for m in files], "kilobytes": [round(m.info.file_size / 1024, 1)
                                                                        for m in files]})
    return ParsedTable(frame, archive.filename, ARCHIVE_FORMAT, None, tuple(notes), 0, payload=ImageUpload(archive))


def guess_options(table: ParsedTable, archive: ImageArchive | None = None) -> ImageOptions:
    """The layout (and a table's image and label columns) an upload most likely has."""
    upload = table.payload if isinstance(table.payload, ImageUpload) else None
    archive = archive or (upload.archive if upload else None)
    if upload is None or upload.manifest is not None:  # a table: inside the ZIP or beside it
        image_col = _path_column(table.frame, archive)
        labels = label_candidates(table.frame, exclude=[image_col])
        return ImageOptions(layout="table", image_col=image_col, label_col=labels[0] if labels else None)
    parts = [archive.members[i].parts for i in archive.file_indices()] if archive else []
    images = [p for p in parts if p[-1].lower().endswith(tuple(IMAGE_SUFFIXES))]
    foldered = {p[-2] for p in images if len(p) > 1 and p[-2].lower() not in SPLIT_FOLDERS}
    return ImageOptions(layout="folders" if len(foldered) >= 2 else "unlabelled")


def _path_column(frame: pd.DataFrame, archive: ImageArchive | None) -> str | None:
    """The column whose values most often end like the archive's file names (or look like image file names)."""
    names = {m.parts[-1] for m in archive.members} if archive else set()
    best, best_share = None, 0.0
    for col in frame.columns:
        values = as_text(frame[col].head(200))
        if values.empty:
            continue
        base = values.str.replace("\\", "/", regex=False).str.rsplit("/", n=1).str[-1]
        share = float(base.isin(names).mean()) if names else float(
            base.str.lower().str.endswith(tuple(IMAGE_SUFFIXES)).mean())
        if share > best_share:
            best, best_share = str(col), share
    return best if best_share >= 0.5 else None


def looks_like_images(data: bytes, filename: str) -> bool:
    """An upload the Datasets page offers the images task for: a ZIP whose files are mostly images."""
    if not is_zip(data):
        return False
    try:
        archive = read_archive(data, filename)
    except DatasetError:
        return True  # an unsafe or damaged ZIP: the images task says what is wrong with it
    files = [archive.members[i] for i in archive.file_indices()]
    return bool(files) and sum(m.suffix in IMAGE_SUFFIXES for m in files) * 2 > len(files)


def prepare_from_args(args: argparse.Namespace, table: ParsedTable, split_kw: dict[str, Any]) -> PreparedDataset:
    """`datasets add --task images`: a ZIP (folders, a table inside, or --unlabelled), or a table with --images ZIP;
    --image-col/--label-col name a table's columns (else guessed); --skip-bad-images, --drop-duplicates and
    --drop-rare-classes as on the Datasets page."""
    upload = table.payload if isinstance(table.payload, ImageUpload) else None
    archive = upload.archive if upload else None
    images = getattr(args, "images", None)
    if archive is None:
        if not images:
            raise DatasetError(f"{table.filename}: a table of image paths needs the ZIP of its images: add "
                               "--images PATH.zip")
        archive = read_archive(Path(images), Path(images).name)
    elif images:
        raise DatasetError(f"{table.filename} is a ZIP already; --images is for a CSV/Parquet naming files in a ZIP")
    guess = guess_options(table, archive)
    layout = "unlabelled" if args.unlabelled else guess.layout
    if args.unlabelled and (args.label_col or getattr(args, "image_col", None)):
        raise DatasetError("--unlabelled takes no --label-col or --image-col: the labels are given on the Label page")
    if layout != "table" and (args.label_col or getattr(args, "image_col", None)):
        raise DatasetError(f"{table.filename}: --image-col and --label-col name columns of a table of image paths, "
                           "and this upload has none (its folders give the labels)")
    options = ImageOptions(
        layout=layout, image_col=getattr(args, "image_col", None) or guess.image_col,
        label_col=args.label_col or guess.label_col, skip_bad=bool(getattr(args, "skip_bad_images", False)),
        drop_duplicates=args.drop_duplicates, drop_rare_classes=args.drop_rare_classes)
    return prepare_images(table, archive, options, SplitConfig(**split_kw))
