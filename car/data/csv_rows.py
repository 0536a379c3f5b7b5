"""Splitting a delimited text file into rows of strings, keeping every malformed line.

Every non-blank line after the header is an input row; a row whose field count differs
from the header's is rejected with its line number. The fast path finds record bounds
and field counts with numpy (quote-aware) and lets pandas' C parser read the good rows;
when the two disagree (unusual quoting, bare CR line ends) the ``csv`` module reads the file
instead. A quoted field never closed is an error: it would swallow the rest of the file.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from car.alerts import DataError
from car.data.files import check_utf8, decode
from car.data.schema import Parsed
from car.progress import ANNOUNCE_BYTES, Progress

QUOTE = ord('"')
NEWLINE = ord("\n")
_END = "\ufdd0end of file\ufdd0"  # Unicode noncharacters: never in real alert text


@dataclass
class CsvRows:
    """The good rows as a frame of strings (header names as columns) and their accounting."""

    frame: pd.DataFrame
    parsed: Parsed
    repeated: frozenset[str] = frozenset()  # names the file's header holds more than once


@dataclass
class _Records:
    """Byte bounds, field counts and start lines of the records of a file."""

    starts: np.ndarray
    stops: np.ndarray
    counts: np.ndarray
    lines: np.ndarray
    blank: np.ndarray


def read_csv_rows(data: bytes, source: str, delimiter: str = ",") -> CsvRows:
    """Split ``data`` (the file's bytes) into a header and rows; see the module docstring."""
    delimiter = _check_delimiter(delimiter)
    name = source.rsplit("/", 1)[-1]
    if not data:
        raise _empty(source)
    check_utf8(data, name)
    rows = _fast(data, source, delimiter)
    return rows if rows is not None else _slow(data, source, delimiter)


def _check_delimiter(delimiter: str) -> str:
    delimiter = "\t" if delimiter in ("tab", "\\t") else delimiter  # a list (data.delimiter=[;]) is no key
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\n\r\"":
        raise DataError(f"data.delimiter={delimiter!r} must be one character, e.g. ',' ';' or tab")
    return delimiter


def _records(data: bytes, delimiter: str) -> _Records:
    """Records split at newlines outside quotes; a doubled quote toggles twice, so parity holds."""
    b = np.frombuffer(data, dtype=np.uint8)
    if QUOTE in b:
        outside = np.bitwise_xor.accumulate((b == QUOTE).view(np.uint8)) == 0
    else:
        outside = np.ones(len(b), dtype=bool)
    newline = b == NEWLINE
    ends = np.flatnonzero(newline & outside)
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [len(b)]])
    bounds = np.concatenate([starts, [len(b)]])
    counts = 1 + np.diff(np.searchsorted(np.flatnonzero((b == ord(delimiter)) & outside), bounds))
    lines = 1 + np.searchsorted(np.flatnonzero(newline), starts)
    return _Records(starts, stops, counts, lines, _blank(data, b, starts, stops, delimiter))


def _blank(data: bytes, b: np.ndarray, starts: np.ndarray, stops: np.ndarray, delimiter: str) -> np.ndarray:
    """Records of nothing but spaces, tabs and carriage returns (pandas skips those lines)."""
    space = "".join(c for c in " \t\r" if c != delimiter).encode()
    first = b[np.minimum(starts, len(b) - 1)]
    blank = (starts == stops) | np.isin(first, list(space))
    for i in np.flatnonzero(blank & (starts < stops)):
        blank[i] = not data[starts[i] : stops[i]].strip(space)
    return blank


def _fast(data: bytes, source: str, delimiter: str) -> CsvRows | None:
    """Rows via numpy bounds + pandas, or None when pandas or csv disagree with the bounds."""
    if data.count(b'"') % 2:
        return None  # a quote in mid-field or one never closed: the numpy bounds would be wrong
    rec = _records(data, delimiter)
    filled = np.flatnonzero(~rec.blank)
    if len(filled) == 0:
        raise _empty(source)
    head, rows = filled[0], filled[1:]
    raw = _header(data[rec.starts[head] : rec.stops[head]], delimiter)
    if raw is None:
        return None
    header = _unique(raw)
    if len(rows) == 0:
        raise _header_only(source)
    good = rec.counts[rows] == len(header)
    frame = _pandas(data, rec, np.concatenate([[head], rows[good]]), header, delimiter, _name(source))
    if rec.counts[head] != len(header) or frame is None or len(frame) != good.sum():
        return None
    ids = np.arange(len(rows))
    parsed = Parsed(source, ids=ids[good].tolist(), places=rec.lines[rows[good]].tolist())
    for i in ids[~good]:
        start, stop, count = rec.starts[rows[i]], rec.stops[rows[i]], rec.counts[rows[i]]
        text = data[start:stop].decode("utf-8", errors="replace").rstrip("\r")
        if _field_counts(text, delimiter) != [count]:
            return None  # a quote in mid-field or a bare CR line end: the numpy bounds are wrong here
        parsed.reject(int(i), int(rec.lines[rows[i]]), f"expected {len(header)} fields, found {count}", text)
    return CsvRows(frame, parsed, _repeated(raw))


def _field_counts(text: str, delimiter: str) -> list[int]:
    """Field count of each record the csv module finds in ``text`` ([] if it cannot read it)."""
    try:
        return [len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error:
        return []


def _pandas(
    data: bytes, rec: _Records, keep: np.ndarray, header: list[str], delimiter: str, name: str
) -> pd.DataFrame | None:
    """The records ``keep`` (header first) read by pandas' C parser, or None if it fails or finds
    other field counts (a quote in mid-field, e.g. after a space, quotes nothing to pandas)."""
    if len(keep) < np.count_nonzero(~rec.blank):
        b = np.frombuffer(data, dtype=np.uint8)
        mask = np.zeros(len(rec.starts), dtype=bool)
        mask[keep] = True
        data = b[np.repeat(mask, np.diff(np.concatenate([rec.starts, [len(b)]])))].tobytes()
    try:
        with (Progress(f"parsing {name}", len(data), "bytes", announce=len(data) >= ANNOUNCE_BYTES) as progress,
              warnings.catch_warnings()):
            warnings.simplefilter("error", pd.errors.ParserWarning)  # more fields than names: it drops them
            frame = pd.read_csv(
                io.BytesIO(data), sep=delimiter, dtype=str, keep_default_na=False, index_col=False,
                encoding="utf-8-sig", encoding_errors="replace", header=0, names=header,
            )
            progress.update(len(data), f"{len(frame):,} rows")
        return frame
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        return None


def _slow(data: bytes, source: str, delimiter: str) -> CsvRows:
    """Rows via the csv module, record by record (exact for any quoting)."""
    text = decode(data, _name(source))
    # Lines are counted at LF as in the fast path (a CR alone ends a record, not a line), or at
    # CR in a file without any LF.
    eol = "\n" if "\n" in text else "\r"
    # A sentinel line after the data: a quoted field left open swallows it, which csv accepts silently.
    text += ("" if text.endswith(("\n", "\r")) else "\n") + _END + "\n"
    lines = _CountedLines(text, eol)
    reader = csv.reader(lines, delimiter=delimiter)
    raw, header, records, parsed, line, start, row = [], None, [], Parsed(source), 1, 1, []
    try:
        with Progress(f"parsing {_name(source)} (csv module)", text.count(eol), "lines") as progress:
            for row in reader:
                start, line = line, lines.ends + 1
                progress.update(lines.ends)
                if row == [_END]:
                    break
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if header is None:
                    raw = [name.strip() for name in row]
                    header = _unique(raw)
                elif len(row) == len(header):
                    parsed.keep(parsed.n_input, start)
                    records.append(row)
                else:
                    reason = f"expected {len(header)} fields, found {len(row)}"
                    parsed.reject(parsed.n_input, start, reason, delimiter.join(row))
    except csv.Error as err:
        name = _name(source)
        raise DataError(f"{name}:{line}: {err}; check the file's quoting and data.delimiter") from None
    if row != [_END]:
        raise DataError(
            f"{_name(source)}:{start}: a quoted field opened in this record is never closed, so the rest of "
            'the file would be one field; close the quote (a quote inside a quoted field is written "")'
        )
    if header is None:
        raise _empty(source)
    if parsed.n_input == 0:
        raise _header_only(source)
    columns = list(zip(*records)) if records else [()] * len(header)
    frame = pd.DataFrame({h: pd.Series(c, dtype=str) for h, c in zip(header, columns)})
    return CsvRows(frame, parsed, _repeated(raw))


class _CountedLines:
    """The lines of a text for csv.reader, counting the line ends ``eol`` read so far."""

    def __init__(self, text: str, eol: str) -> None:
        self.lines, self.eol, self.ends = io.StringIO(text, newline=""), eol, 0

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.ends += line.endswith(self.eol)
        return line


def _header(raw: bytes, delimiter: str) -> list[str] | None:
    """Header fields, trimmed as values are; None if csv cannot read the line (e.g. bare CR line
    ends: then the numpy bounds are wrong)."""
    text = raw.decode("utf-8-sig", errors="replace").rstrip("\r")
    try:
        return [name.strip() for name in next(csv.reader([text], delimiter=delimiter))]
    except csv.Error:
        return None


def _repeated(names: list[str]) -> frozenset[str]:
    return frozenset(name for name, count in Counter(names).items() if count > 1)


def _unique(names: list[str]) -> list[str]:
    """Header names made unique like pandas does (``a``, ``a.1``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}.{k}")
    return out


def _empty(source: str) -> DataError:
    return DataError(f"{_name(source)}: empty file; it needs a header line and data rows: check data.path")


def _header_only(source: str) -> DataError:
    return DataError(f"{_name(source)}: header only, no data rows; check data.path names the complete export")


def _name(source: str) -> str:
    return source.rsplit("/", 1)[-1]
