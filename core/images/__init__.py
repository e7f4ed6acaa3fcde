"""Image classification: a dataset of labelled (or unlabelled) images, stored beside a classification frame.

The stored format of an image dataset version (task name "images"), which every image model, page and export
reads, lives under PROTOLAB_HOME/datasets/<id>/ like any dataset (core.data.storage writes the folder
all-or-nothing):

    data.parquet     one row per image, the classification columns where they mean the same:
        row_id   int64   the row's position in the upload; kept through every version made from it (as for texts)
        image    str     the image's key: "<sha256 of the file's bytes, 64 hex>.<ext>", ext one of
                         jpg png webp bmp gif (the decoded format, not the uploaded name's suffix)
        label    str     its class; None (null) in an unlabelled dataset, to be labelled on the Label page
        split    str     train | validation | test (an unlabelled dataset: every row train)
        path     str     the member's path inside the upload ("train/cat/001.jpg"): captions and messages only,
                         never opened
        width    int64   pixels, after the EXIF orientation is applied
        height   int64
    images/<key>     the uploaded file's bytes, unchanged; one file per distinct content (content-addressed), so
                     exact duplicates share a file and a version made from a dataset links the same files
                     (write_dataset(..., files=core.images.store.LinkedImages(parent_id, keys)))

Several rows may share one key (an exact duplicate in the upload is reported, and dropped only when asked).
Readers open an image with `core.images.store.open_image(image_path(dataset_id, key))`, which returns an RGB
PIL image whatever the file held (EXIF orientation applied; grayscale, RGBA, palette, CMYK and 16-bit
converted; a GIF's first frame). The mapping stores {"image": <column or layout>, "label": ..., "unlabelled":
bool, "layout": "folders" | "table" | "unlabelled", "split": {...}}; stats hold "classes" and
"classes_per_split" as a text classification dataset's do, plus "duplicates", "leaked_images", "bad_files"
(skipped ones) and "sizes" summaries.
"""

from __future__ import annotations

import re

TASK = "images"  # Dataset.task / Run.task of image classification (a plain string: no enum lists it)
IMAGE = "image"  # the frame's column of image keys
PATH = "path"  # the frame's column of paths inside the upload
WIDTH, HEIGHT = "width", "height"
IMAGES_DIR = "images"  # the dataset folder's sub-folder of image files
# The formats an upload may hold (PIL's names) and the extension each is stored under.
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}
KEY_PATTERN = re.compile(r"[0-9a-f]{64}\.(jpg|png|webp|bmp|gif)")
