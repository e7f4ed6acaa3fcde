"""The Datasets page's parts for image datasets: the upload form (layout, columns, options) and the profile view.

Preparing decodes every image, so it is cached per uploaded file and settings: a rerun of the page (any widget)
must not decode 10,000 images again.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from PIL import Image

from core.charts import datasets as charts
from core.data.types import ParsedTable, PreparedDataset, SplitConfig
from core.errors import ProtolabError
from core.images import charts as image_charts
from core.images.archive import ImageArchive, read_archive
from core.images.importing import ImageOptions, prepare_images
from core.images.reading import ImageUpload, guess_options
from core.images.store import load_image

LAYOUTS = {"folders": "One folder per class", "table": "A table names each image and its label",
           "unlabelled": "No labels yet (label them on the Label page)"}
THUMBNAIL = (96, 96)
NONE = "(none)"


@st.cache_resource(show_spinner="Checking every image…", max_entries=2)
def _prepared(fid: str, options: ImageOptions, split: SplitConfig, _table: ParsedTable,
              _archive: ImageArchive) -> PreparedDataset:
    # Keyed by the upload's id and the settings (the table and archive are that upload's; not hashed).
    return prepare_images(_table, _archive, options, split)


@st.cache_resource(show_spinner=False, max_entries=2)
def _side_archive(file_id: str, _data: bytes, filename: str) -> ImageArchive:
    return read_archive(_data, filename)


def upload(table: ParsedTable, split: SplitConfig, fid: str) -> PreparedDataset:
    """How the upload is labelled (folders, a table, none), the table's columns, and the cleaning options."""
    payload = table.payload if isinstance(table.payload, ImageUpload) else None
    archive, key = (payload.archive, fid) if payload else _archive_beside(fid)
    guess = guess_options(table, archive)
    layouts = list(LAYOUTS) if payload is None or payload.manifest is not None else ["folders", "unlabelled"]
    layout = st.radio("Labels", layouts, format_func=LAYOUTS.get, horizontal=True, key=f"image_layout_{fid}",
                      index=layouts.index(guess.layout) if guess.layout in layouts else 0)
    image_col = label_col = None
    if layout == "table":
        cols = list(map(str, table.frame.columns))
        left, right = st.columns(2)
        image_col = left.selectbox("Image path column", cols, key=f"map_image_{fid}",
                                   index=cols.index(guess.image_col) if guess.image_col in cols else 0)
        label_col = right.selectbox("Label column", cols, key=f"map_label_{fid}",
                                    index=cols.index(guess.label_col) if guess.label_col in cols else 0)
    left, middle, right = st.columns(3)
    options = ImageOptions(
        layout=layout, image_col=image_col, label_col=label_col,
        skip_bad=left.checkbox("Skip unreadable files", key=f"skip_bad_{fid}",
                               help="Leave out files that are not readable images (they are listed) instead of "
                                    "refusing the upload"),
        drop_duplicates=middle.checkbox("Drop exact duplicate images", key=f"drop_dups_{fid}"),
        drop_rare_classes=right.checkbox("Drop classes too small for every split", key=f"drop_rare_{fid}"))
    return _prepared(key, options, split, table, archive)


def _archive_beside(fid: str) -> tuple[ImageArchive, str]:
    """A table of image paths came alone: the ZIP of its images is a second upload."""
    file = st.file_uploader("ZIP of the images the table names", type=["zip"], key=f"images_zip_{fid}")
    if file is None:
        raise ProtolabError("This table names image files: upload the ZIP that holds them above.")
    return _side_archive(file.file_id, file.getvalue(), file.name), f"{fid}+{file.file_id}"


@st.cache_data(show_spinner=False, max_entries=64)
def thumbnails(dataset_id: int, keys: tuple[str, ...]) -> list[Image.Image]:
    shown = []
    for key in keys:
        image = load_image(dataset_id, key)
        image.thumbnail(THUMBNAIL)
        shown.append(image)
    return shown


def inspect(summary: dict[str, Any], profile: dict[str, Any], column: Any) -> None:
    """Classes, images per class, sizes and aspect ratios, and a thumbnail grid per class."""
    column.metric("Classes", len(summary.get("classes", {})))
    stats = summary["stats"]
    if profile["classes"]:
        st.plotly_chart(charts.class_balance(profile["classes"], profile["imbalance_ratio"]), key="chart_classes")
    left, right = st.columns(2)
    left.plotly_chart(image_charts.size_scatter(profile["widths"], profile["heights"], profile["labels"]),
                      key="chart_sizes")
    right.plotly_chart(image_charts.aspect_histogram(profile["aspects"]), key="chart_aspects")
    st.caption(f"{profile['duplicates']} exact duplicate images; {stats.get('leaked_images', 0)} in more than "
               f"one split; {len(stats.get('bad_files', []))} unreadable files skipped")
    if len(profile["samples"]) < len(profile["classes"]):
        st.caption(f"Thumbnails of the {len(profile['samples'])} largest of {len(profile['classes'])} classes")
    for label, shown in profile["samples"].items():
        keys, paths = tuple(k for k, _ in shown), [p for _, p in shown]
        if label:
            st.markdown(f"**{label}** ({profile['classes'].get(label, 0):,} images)")
        st.image(thumbnails(summary["id"], keys), caption=paths, width=THUMBNAIL[0])
