"""Reading input files: gzip, text decoding and the files of a folder."""

from __future__ import annotations

import codecs
import gzip
import io
import logging
import os
import zlib
from pathlib import Path
from typing import BinaryIO

from car.alerts import DataError
from car.progress import Progress

log = logging.getLogger(__name__)
GZIP_MAGIC = b"\x1f\x8b"
# Binary files given where text is read: their first bytes, what they are and the fix.
NOT_TEXT = {
    b"PK\x03\x04": ("a ZIP archive or Excel workbook (.xlsx)", "unzip it, or save the sheet as CSV UTF-8"),
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": ("an Excel 97-2003 workbook (.xls)", "save the sheet as CSV UTF-8"),
    b"PAR1": ("a Parquet file", "read it with data=parquet"),
}
CHUNK_BYTES = 16 << 20  # read this much at a time, reporting progress in between


def read_bytes(path: str | Path) -> bytes:
    """The file's text bytes, gunzipped when it is gzip (by suffix ``.gz`` or content); UTF-16
    text with a byte order mark (Excel's "Unicode text", Windows PowerShell's ``>``) as UTF-8;
    a DataError for a binary file (``NOT_TEXT``).

    Read in chunks of ``CHUNK_BYTES``, logging progress (bytes, lines) on a long read.
    """
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gzipped = path.suffix == ".gz" or raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if not gzipped:
                return _text(_read_chunks(raw, raw, path.name), path.name)
            try:
                return _text(_read_chunks(gzip.GzipFile(fileobj=raw), raw, path.name), path.name)
            except (EOFError, gzip.BadGzipFile, zlib.error) as err:
                raise DataError(
                    f"{path.name}: truncated or corrupt gzip ({err}); download or compress the file again"
                ) from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; fix it with data.path=<existing file or folder>") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror}); check the file and data.path") from None


def _read_chunks(stream: BinaryIO, raw: BinaryIO, name: str) -> bytes:
    """All of ``stream``; progress is the position in the file underneath, ``raw``."""
    out = io.BytesIO()
    lines = 0
    with Progress(f"reading {name}", os.fstat(raw.fileno()).st_size, "bytes") as progress:
        while chunk := stream.read(CHUNK_BYTES):
            out.write(chunk)
            lines += chunk.count(b"\n")
            progress.update(raw.tell(), f"{lines:,} lines")
    return out.getvalue()


def _text(data: bytes, name: str) -> bytes:
    """``data`` re-encoded as UTF-8 when it starts with a UTF-16 byte order mark, else as it is;
    a DataError if it is a binary file that ``NOT_TEXT`` knows."""
    for magic, (what, fix) in NOT_TEXT.items():
        if data.startswith(magic):
            raise DataError(f"{name}: {what}, not text; {fix}, and point data.path at that file")
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data
    log.info("%s: UTF-16 text (byte order mark %s), read as UTF-8", name, data[:2].hex(" ").upper())
    return data.decode("utf-16", errors="replace").encode("utf-8")


def decode(data: bytes, name: str) -> str:
    """UTF-8 text (a leading BOM dropped); bytes that are not UTF-8 become U+FFFD, with a warning."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        _warn_not_utf8(err, name)
        return data.decode("utf-8-sig", errors="replace")


def check_utf8(data: bytes, name: str) -> None:
    """Warn once when ``data`` is not valid UTF-8 (the readers replace such bytes)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        _warn_not_utf8(err, name)


def _warn_not_utf8(err: UnicodeDecodeError, name: str) -> None:
    """Log where the first byte that is not UTF-8 is."""
    log.warning("%s: bytes that are not UTF-8 (first at byte %d) are read as U+FFFD", name, err.start)


def input_files(path: str | Path, patterns: tuple[str, ...]) -> list[Path]:
    """``[path]`` for a file; for a folder its files matching ``patterns``, sorted by name."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted({f for pattern in patterns for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise DataError(
            f"{path}: folder has no files matching {', '.join(patterns)}; "
            "point data.path at a file or at a folder of such files"
        )
    return files
