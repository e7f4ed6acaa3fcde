"""Turning uploaded bytes into a table: format sniffing, decompression and encoding detection.

Used through `core.data.datasets.read_table`; every failure becomes a DatasetError naming the file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zipfile
from typing import IO, Any

import numpy as np
import pandas as pd

from core.data.types import DatasetError, ParsedTable

MAX_DECOMPRESSED_BYTES = 2 * 1024**3  # a zip bomb stops here instead of filling memory
# Tables compress 3-20 fold; a bomb (zeros, one repeated line) ~1000 fold. Decompression stops as soon as the
# output passes this ratio (beyond a floor small files never reach), long before it could fill memory.
MAX_EXPANSION = 50
EXPANSION_FLOOR = 64 * 1024**2
_INFLATE_CHUNK = 1024**2
# Wider tables are refused before they are parsed: a text or interactions dataset has a handful of columns, and
# a 100,000-column file would take minutes and gigabytes to read for nothing a model here can use.
MAX_COLUMNS = 10_000
SNIFF_CHARS = 64 * 1024
DELIMITERS = ",;\t|"
# Bytes cp1252 leaves undefined; real "Windows" files that contain them were written as Latin-1.
CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


codecs.register_error("protolab_latin1", _latin1_fallback)


def parse_upload(data: bytes, filename: str) -> ParsedTable:
    """Parse `data` (named `filename` for messages only) into a ParsedTable or raise DatasetError."""
    try:
        return _parse(data, filename, notes=[])
    except DatasetError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # parsers raise many types on garbage; the user needs one clear line
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{filename}: could not read it as a table ({detail})") from exc


def _parse(data: bytes, name: str, notes: list[str]) -> ParsedTable:
    if not data.strip():
        raise DatasetError(f"{name}: the file is empty")
    if data[:2] == b"\x1f\x8b":
        return _parse(_gunzip(data, name), name, [*notes, "decompressed from gzip"])
    if data[:4] == b"PK\x03\x04":
        return _parse_zip(data, name, notes)
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq  # pandas' own Parquet engine, loaded only for Parquet files

        check_width(pq.ParquetFile(io.BytesIO(data)).metadata.num_columns, name)
        frame = pd.read_parquet(io.BytesIO(data))
        return _table(frame, None, name, "parquet", None, notes, header_rows=0)
    text, encoding, note = decode_text(data)
    if note:
        notes = [*notes, note]
    _reject_binary(text, name)
    head = text.lstrip()[:1]
    if head in "[{" and _looks_like_json(text, name):
        return _parse_json(text, name, encoding, notes)
    return _parse_delimited(data, text, name, encoding, notes)


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            return inflate(fh, len(data), name)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{name}: a broken gzip file ({exc})") from exc


def inflate(stream: IO[bytes], compressed_bytes: int, name: str) -> bytes:
    """Read a decompressing `stream` a megabyte at a time, refusing (DatasetError) as soon as the output passes
    2 GB or MAX_EXPANSION times the `compressed_bytes` it came from: a bomb costs a second, not gigabytes."""
    cap = min(MAX_DECOMPRESSED_BYTES, max(EXPANSION_FLOOR, MAX_EXPANSION * compressed_bytes))
    chunks, total = [], 0
    while chunk := stream.read(_INFLATE_CHUNK):
        total += len(chunk)
        if total > cap:
            if cap == MAX_DECOMPRESSED_BYTES:
                raise DatasetError(f"{name}: decompresses to more than 2 GB; split it into smaller files")
            raise DatasetError(f"{name}: decompresses to more than {MAX_EXPANSION} times its size (over "
                               f"{cap // 1024**2:,} MB from {compressed_bytes / 1024**2:.1f} MB): a compression bomb, "
                               "or data too repetitive to be a table; upload it uncompressed")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_zip(data: bytes, name: str, notes: list[str]) -> ParsedTable:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{name}: a broken zip file ({exc})") from exc
    if any(m.filename.startswith("xl/") for m in members):
        return _parse_excel(data, name, notes)
    files = [m for m in members if not m.is_dir() and not m.filename.startswith("__MACOSX/")
             and not m.filename.rsplit("/", 1)[-1].startswith(".")]
    if len(files) != 1:
        listed = ", ".join(m.filename for m in files[:5]) or "nothing"
        raise DatasetError(f"{name}: the zip archive holds {len(files)} files ({listed}); expected exactly one table")
    if files[0].file_size > MAX_DECOMPRESSED_BYTES:
        raise DatasetError(f"{name}: decompresses to more than 2 GB; split it into smaller files")
    with archive.open(files[0]) as member:  # its declared size may lie: the stream is capped as it is read
        inner = inflate(member, files[0].compress_size, name)
    return _parse(inner, f"{name}:{files[0].filename}", [*notes, "extracted from zip"])


def _parse_excel(data: bytes, name: str, notes: list[str]) -> ParsedTable:
    sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=str, engine="openpyxl")
    if not sheets:
        raise DatasetError(f"{name}: the workbook has no sheets")
    first, frame = next(iter(sheets.items()))
    if len(sheets) > 1:
        notes = [*notes, f"read the first sheet '{first}' of {len(sheets)}"]
    return _table(frame.fillna(""), None, name, "xlsx", None, notes)


def decode_text(data: bytes) -> tuple[str, str, str | None]:
    """(text, encoding used, note for the user or None): BOMs first, then UTF-8, then Windows-1252."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig", None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16", "read as UTF-16"
    guess = _utf16_without_bom(data)
    if guess:
        try:
            return data.decode(guess), guess, "read as UTF-16"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="protolab_latin1")
    undefined = sum(data.count(bytes([b])) for b in CP1252_UNDEFINED)
    note = "read as Windows-1252 (not valid UTF-8)"
    if undefined:
        note += f"; {undefined} bytes undefined in Windows-1252 read as Latin-1"
    return text, "cp1252", note


def _utf16_without_bom(data: bytes) -> str | None:
    # ASCII-heavy UTF-16 has a NUL in every other byte; which half tells the byte order.
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _reject_binary(text: str, name: str) -> None:
    sample = text[:1_000_000]
    controls = len(_CONTROL_CHARS.findall(sample))
    # A NUL anywhere (a C-level scan of the whole text, not only the sampled top) is binary, not a table.
    if controls > max(3, 0.01 * len(sample)) or "\x00" in text:
        raise DatasetError(f"{name}: not a table: it looks like a binary file (expected CSV, TSV, JSON, "
                           "JSON Lines, Parquet or Excel .xlsx, optionally .gz/.zip)")


def _looks_like_json(text: str, name: str) -> bool:
    # A CSV whose first cell starts with "[" or "{" is rare but possible: only call it JSON if it parses.
    first_line = text.lstrip().split("\n", 1)[0].strip()
    try:
        json.loads(first_line)
        return True
    except ValueError:
        pass
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _parse_json(text: str, name: str, encoding: str, notes: list[str]) -> ParsedTable:
    try:
        records: Any = json.loads(text)
        fmt = "json"
    except ValueError:
        records, fmt = [], "jsonl"
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise DatasetError(f"{name}: line {number} is not valid JSON ({exc.msg})") from exc
    if isinstance(records, dict):
        records, fmt = [records], "jsonl"
    if not isinstance(records, list):
        raise DatasetError(f"{name}: not a table: JSON must be an array of objects or one object per line")
    if not records:
        raise DatasetError(f"{name}: the JSON array is empty; no rows")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DatasetError(f"{name}: record {number} is a {type(record).__name__}, not an object; "
                               "JSON must be an array of objects or one object per line")
    check_width(len(records[0]), name)
    rows = [flatten_record(r) for r in records]
    if any(isinstance(v, dict) and v for r in records for v in r.values()):
        notes = [*notes, "nested objects flattened to dotted columns (e.g. ticket.body)"]
    frame = pd.DataFrame.from_records(rows)
    return _table(frame, None, name, fmt, encoding, notes, header_rows=0)


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One JSON object as a flat row: nested objects become dotted keys ({"meta": {"label": 1}} ->
    {"meta.label": 1}), as pandas.json_normalize does; lists stay one cell, as JSON text.

    A dotted key that clashes with a literal key of that name (both "a.b" and {"a": {"b": ..}}) gets a
    "_" appended, so no value is silently lost.
    """
    out: dict[str, Any] = {}
    _flatten_into(out, "", record)
    return out


def _flatten_into(out: dict[str, Any], prefix: str, obj: dict[str, Any]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten_into(out, f"{name}.", value)
            continue
        while name in out:
            name += "_"
        out[name] = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


def _parse_delimited(data: bytes, text: str, name: str, encoding: str, notes: list[str]) -> ParsedTable:
    sep = _sniff_delimiter(text[:SNIFF_CHARS], name)
    check_width(_header_width(text, sep), name)
    fmt = {"\t": "tsv", ",": "csv"}.get(sep, "delimited")
    if sep not in ",\t":
        notes = [*notes, f"columns separated by {sep!r}"]
    # UTF-8 bytes go straight to the C parser (fast); other encodings were decoded already.
    utf8 = encoding.startswith("utf-8")

    def read(**kwargs: Any) -> pd.DataFrame:
        source = io.BytesIO(data) if utf8 else io.StringIO(text)
        # Blank lines are read as rows (then left out below) so row numbers count them, as a spreadsheet does.
        return pd.read_csv(source, sep=sep, keep_default_na=False, na_filter=False, engine="c",
                           encoding=encoding if utf8 else None, skip_blank_lines=False, **kwargs)

    try:
        # Inferred types are the fast path; numeric-looking columns are then re-read as text so ids keep
        # their leading zeros and labels stay "1", not 1.0.
        frame = read()
        numeric = [i for i, dtype in enumerate(frame.dtypes) if not pd.api.types.is_string_dtype(dtype)]
        if numeric:
            as_text = read(usecols=numeric, dtype=str).astype("str")
            as_text.columns = frame.columns[numeric]
            # One concat, not one assignment per column: a wide file has thousands of numeric columns.
            frame = pd.concat([frame.drop(columns=as_text.columns), as_text], axis=1)[frame.columns]
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"{name}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        raise DatasetError(f"{name}: malformed {fmt.upper()}: {detail}") from exc
    return _table(*_without_blank_rows(frame), name, fmt, encoding, notes)


def _without_blank_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    """`frame` without its rows of empty cells (blank lines), and the kept rows' places among the file's data rows
    (None when nothing was left out): messages then give the row numbers a spreadsheet shows."""
    blank = (frame == "").all(axis=1).to_numpy() if len(frame.columns) else np.zeros(len(frame), bool)
    if not blank.any():
        return frame, None
    return frame[~blank], np.flatnonzero(~blank)


def _header_width(text: str, sep: str) -> int:
    """How many fields the first line holds (quotes respected); 0 when it cannot tell (the parsed table is
    checked again)."""
    end = text.find("\n")
    try:
        return len(next(csv.reader([text[:end] if end >= 0 else text], delimiter=sep), []))
    except csv.Error:
        return 0


def check_width(columns: int, name: str) -> None:
    """DatasetError for a table wider than MAX_COLUMNS, said before the slow part (parsing every cell)."""
    if columns > MAX_COLUMNS:
        raise DatasetError(f"{name}: {columns:,} columns; Protolab reads at most {MAX_COLUMNS:,}. Keep the columns "
                           "a model needs (text and label, or user, item, rating, time) and upload it again")


def _sniff_delimiter(sample: str, name: str) -> str:
    lower = name.lower().removesuffix(".gz")
    if lower.endswith((".tsv", ".tab")):
        return "\t"
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _table(frame: pd.DataFrame, source_rows: np.ndarray | None, name: str, fmt: str, encoding: str | None,
           notes: list[str], header_rows: int = 1) -> ParsedTable:
    check_width(frame.shape[1], name)
    frame.columns = _clean_columns(frame.columns)
    if frame.shape[1] == 0:
        raise DatasetError(f"{name}: not a table: no columns found")
    if len(frame) == 0:
        cols = ", ".join(frame.columns[:10])
        raise DatasetError(f"{name}: only a header row ({cols}), no data rows")
    return ParsedTable(frame=frame.reset_index(drop=True), filename=name, file_format=fmt, encoding=encoding,
                       notes=tuple(notes), header_rows=header_rows, source_rows=source_rows)


# Line breaks and other control characters in a header cell (a quoted "a\nb" in a CSV) would break every place a
# column name is shown on one line: pickers, captions, one-line errors.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")


def _clean_columns(columns: pd.Index) -> list[str]:
    """Printable, unique column names: a repeated name gets the first free ".1", ".2", ... (linear time: a set of
    names taken and, per name, the next number to try)."""
    out: list[str] = []
    taken: set[str] = set()
    next_n: dict[str, int] = {}
    for i, col in enumerate(columns):
        label = CONTROL_CHARS.sub(" ", str(col).replace("\ufeff", "")).strip() or f"column_{i + 1}"
        base, n = label, next_n.get(label, 1)
        while label in taken:
            label, n = f"{base}.{n}", n + 1
        next_n[base] = n
        out.append(label)
        taken.add(label)
    return out
