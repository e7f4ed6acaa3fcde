"""An uploaded ZIP of images, read safely: its member list checked before a byte is extracted.

Refused outright, naming the entries: paths that climb out (`../`) or start at a root (`/x`, `C:\\x`), symbolic
links, encrypted entries, more entries than MAX_MEMBERS, an expanded size over MAX_EXPANDED_BYTES, and a
compression ratio no image file has (a zip bomb). Nothing is ever extracted to a path named by the archive:
members are read into memory one at a time (at most their declared size) and stored under their content hash.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.data.types import DatasetError
from core.images.store import ImageError

MAX_MEMBERS = 500_000
MAX_EXPANDED_BYTES = 16 * 2**30  # 16 GiB of files: far beyond a prototype's photo folder
MAX_MEMBER_BYTES = 256 * 2**20  # one image file
MAX_RATIO = 100  # image files barely compress (PNG, JPEG are compressed already); a bomb compresses 1000x
RATIO_FLOOR_BYTES = 2**20  # small members (tiny PNGs, text files) may compress well without being bombs
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".gif"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".json", ".jsonl", ".xlsx"})
# Left by file managers and archivers, never data: skipped without a word.
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".gitkeep", ".gitignore"})
_DRIVE = re.compile(r"^[A-Za-z]:")
SHOWN = 5  # how many names a message lists before "and N more"


def count(n: int, noun: str, verb: str = "") -> str:
    """'1 image', '3 images', '2 classes', '2 entries'; with verb "is": '1 image is', '3 images are'."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + ("es" if noun.endswith("s") else "s")
    words = f"{n:,} {noun if n == 1 else plural}"
    return f"{words} {verb if n == 1 else {'is': 'are', 'has': 'have'}.get(verb, verb)}" if verb else words


def listing(names: list[str], limit: int = SHOWN) -> str:
    """'a.png, b.png and 3 more'."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class Member:
    """One file of the archive: its entry and its path as folders and a file name."""

    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # "train/cat/1.jpg" -> ("train", "cat", "1.jpg"), the archive's own top folder kept

    path: str = field(init=False)  # "train/cat/1.jpg"
    suffix: str = field(init=False)  # ".jpg": computed once, every listing asks it

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", "/".join(self.parts))
        object.__setattr__(self, "suffix", PurePosixPath(self.parts[-1]).suffix.lower())


@dataclass(frozen=True)
class ImageArchive:
    """A ZIP whose entries passed the safety checks; `source` is its bytes (an upload) or its path (the CLI)."""

    source: bytes | Path = field(repr=False)
    filename: str  # for messages only
    members: tuple[Member, ...]  # files, in path order; folders and junk left out
    skipped_junk: int = 0

    def tables(self) -> list[Member]:
        return [m for m in self.members if m.suffix in TABLE_SUFFIXES]

    def file_indices(self) -> list[int]:
        """Every member that is not a table: the images (and whatever else is there, checked as images)."""
        return [i for i, m in enumerate(self.members) if m.suffix not in TABLE_SUFFIXES]

    def open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source)

    def read(self, archive: zipfile.ZipFile, member: Member) -> bytes:
        """A member's bytes, never more than it declared (a lying header cannot expand past its size)."""
        try:
            with archive.open(member.info) as stream:
                data = stream.read(member.info.file_size + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
            # A damaged entry (bad CRC, cut-off data, unknown compression) is a bad file, like a corrupt image.
            raise ImageError(f"{member.path}: cannot be read from the archive ({exc})") from None
        if len(data) > member.info.file_size:
            raise DatasetError(f"{self.filename}: entry {member.path} expands beyond the size it declares; "
                               "the archive is damaged or crafted")
        return data

    def each(self, members: list[Member]) -> Iterator[tuple[Member, bytes | ImageError]]:
        """Each member with its bytes (or why they could not be read), one at a time."""
        with self.open() as archive:
            for member in members:
                try:
                    yield member, self.read(archive, member)
                except ImageError as exc:
                    yield member, exc


def is_zip(source: bytes | Path) -> bool:
    try:
        return zipfile.is_zipfile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except OSError:
        return False


def read_archive(source: bytes | Path, filename: str) -> ImageArchive:
    """Check an archive's entries (never its contents): an ImageArchive, or a DatasetError naming the bad ones."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            infos = archive.infolist()
    except FileNotFoundError:
        raise DatasetError(f"{filename}: no such file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{filename}: not a readable ZIP archive ({exc})") from None
    if len(infos) > MAX_MEMBERS:
        raise DatasetError(f"{filename}: {len(infos):,} entries; at most {MAX_MEMBERS:,} are accepted")
    unsafe, links, locked, members, junk = [], [], [], [], 0
    for info in infos:
        parts = _parts(info.filename)
        if parts is None:
            unsafe.append(info.filename)
            continue
        if not parts or info.filename.endswith(("/", "\\")):  # a folder (is_dir() fails on an empty name)
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            links.append(info.filename)
        elif info.flag_bits & 0x1:
            locked.append(info.filename)
        elif _is_junk(parts):
            junk += 1
        else:
            members.append(Member(info, parts))
    if unsafe:
        raise DatasetError(f"{filename}: {count(len(unsafe), 'entry', 'has')} paths outside the archive "
                           f"({listing(unsafe)}); entries must be relative paths without '..'")
    if links:
        raise DatasetError(f"{filename}: symbolic links are not accepted ({listing(links)}); "
                           "put the image files themselves in the ZIP")
    if locked:
        raise DatasetError(f"{filename}: {count(len(locked), 'entry', 'is')} encrypted ({listing(locked)}); "
                           "make the ZIP without a password")
    _check_sizes(filename, members)
    if not members:
        raise DatasetError(f"{filename}: the ZIP holds no files")
    members.sort(key=lambda m: m.parts)
    return ImageArchive(source, filename, tuple(members), junk)


def _parts(name: str) -> tuple[str, ...] | None:
    """An entry's path as parts, or None when it could land outside a folder it is extracted into."""
    if "\x00" in name:
        return None
    posix = name.replace("\\", "/")  # archivers on Windows write either separator
    if posix.startswith("/") or _DRIVE.match(posix):
        return None
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts):
        return None
    return parts


def _is_junk(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    return parts[0] == "__MACOSX" or name.startswith("._") or name.lower() in _JUNK_NAMES


def _check_sizes(filename: str, members: list[Member]) -> None:
    expanded = sum(m.info.file_size for m in members)
    if expanded > MAX_EXPANDED_BYTES:
        raise DatasetError(f"{filename}: its files expand to {expanded / 2**30:,.1f} GiB; at most "
                           f"{MAX_EXPANDED_BYTES / 2**30:.0f} GiB are accepted")
    big = [m.path for m in members if m.info.file_size > MAX_MEMBER_BYTES]
    if big:
        raise DatasetError(f"{filename}: {count(len(big), 'file', 'is')} over {MAX_MEMBER_BYTES // 2**20} MiB each "
                           f"({listing(big)}); no image needs that many")
    bombs = [m.path for m in members
             if m.info.file_size > RATIO_FLOOR_BYTES and m.info.file_size > MAX_RATIO * max(1, m.info.compress_size)]
    compressed = sum(m.info.compress_size for m in members)
    if bombs or expanded > RATIO_FLOOR_BYTES * 64 and expanded > MAX_RATIO * max(1, compressed):
        where = f" ({listing(bombs)})" if bombs else ""
        raise DatasetError(f"{filename}: the archive expands more than {MAX_RATIO}x{where}, which image files never "
                           "do: it looks like a zip bomb")
