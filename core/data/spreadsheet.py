"""Downloads that are safe to open in a spreadsheet: CSV cells cannot start a formula.

Excel, LibreOffice and Google Sheets run a cell that starts with =, +, -, @ (or a tab/CR
before one) as a formula; prefixing a quote makes it plain text (OWASP's advice).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """Prefix a quote to a string that a spreadsheet would read as a formula; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def formula_like_cells(frame: pd.DataFrame) -> int:
    """How many text cells safe_frame prefixes with a quote (the download's caption says so)."""
    return int(sum(frame[c].map(lambda v: isinstance(v, str) and v.startswith(FORMULA_PREFIXES)).sum()
                   for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])))


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (and column names) cannot run as formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def to_safe_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with BOM, so Excel picks the encoding) of a neutralised frame.

    CRLF line ends make the csv writer quote any cell holding a CR or LF, so a line break
    inside a cell cannot start a new row whose first cell is a formula.
    """
    return safe_frame(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")
