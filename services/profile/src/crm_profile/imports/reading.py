"""Reading import files: the column names, a split into parts that workers read in parallel,
and each part's rows with their line numbers. Local files only (the worker's own copy).

CSV rows carry the physical line on which they start (the header is line 1), counted in bytes
so that a part starting in the middle of the file still knows its line numbers. A part always
starts at the beginning of a line outside any quoted cell: a line break is inside quotes
exactly when an odd number of quote characters precede it (doubled quotes count twice), and
every supported encoding keeps the bytes of line breaks and ASCII quotes unambiguous.
Parquet rows are numbered from 1 in file order, and parts are runs of whole row groups.
"""

from __future__ import annotations

import csv
import itertools
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from crm_profile.imports.model import CsvOptions
from crm_profile.imports.rules import ENCODINGS

BLOCK = 16 * 1024 * 1024
BATCH_ROWS = 5000
Cell = str | date | None


class UnreadableFile(Exception):
    """The file's first record or schema cannot be read with the given options."""


@dataclass(frozen=True)
class Part:
    """A slice of the file: CSV bytes [start, end) whose first line is `first_line`, or Parquet
    row groups whose first row is `first_line`."""

    start: int = 0
    end: int = 0
    first_line: int = 1
    row_groups: tuple[int, ...] = ()


@dataclass(frozen=True)
class Layout:
    columns: list[str]
    parts: list[Part]
    estimated_rows: int


@dataclass(frozen=True, slots=True)
class Row:
    """One record: its cells, or why it could not be read as a row (`malformed`)."""

    line: int
    cells: Sequence[Cell] | None
    malformed: str = ""


def codec(options: CsvOptions) -> str:
    return ENCODINGS[options.encoding.upper()]


def _reader(lines: Iterator[str], options: CsvOptions) -> Any:
    return csv.reader(lines, delimiter=options.delimiter, quotechar=options.quote, doublequote=True, strict=True)


# --- CSV ----------------------------------------------------------------------------------------------


def csv_columns(head: bytes, options: CsvOptions, *, whole_file: bool) -> tuple[list[str], int, int]:
    """Column names from the first bytes of a file; also the byte offset and line number where
    the data starts. Raises UnreadableFile when the first record is malformed or (unless
    `whole_file`) does not end within `head`."""
    raw_lines = _split_lines(head)
    if not whole_file and raw_lines and not raw_lines[-1].endswith(b"\n"):
        raw_lines.pop()  # cut mid-line: not evidence of anything
    name = codec(options)

    def texts() -> Iterator[str]:
        for index, raw in enumerate(raw_lines):
            try:
                text = raw.decode(name)
            except UnicodeDecodeError as exc:
                raise UnreadableFile(f"the first record is not valid {options.encoding} text") from exc
            yield text[1:] if index == 0 and text.startswith("\ufeff") else text

    reader = _reader(texts(), options)
    try:
        first = next(reader)
        while not first:  # leading blank lines
            first = next(reader)
    except StopIteration:
        raise UnreadableFile("the file has no complete first record within its first bytes") from None
    except csv.Error as exc:
        raise UnreadableFile("the first record is not well-formed delimited text (check quoting)") from exc
    lines_used = reader.line_num
    if options.no_header:
        return [f"#{i + 1}" for i in range(len(first))], 0, 1
    offset = sum(len(raw) for raw in raw_lines[:lines_used])
    return list(first), offset, lines_used + 1


def _split_lines(data: bytes) -> list[bytes]:
    """`data` cut after each `\n` (only: a lone `\r` may sit inside a quoted cell)."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def plan_csv(path: Path, options: CsvOptions, *, parts: int, min_part_bytes: int) -> Layout:
    size = path.stat().st_size
    with path.open("rb") as file:
        columns, data_start, first_line = csv_columns(file.read(min(size, 4 * 1024 * 1024)), options,
                                                      whole_file=size <= 4 * 1024 * 1024)
        if size == 0:
            return Layout(columns, [], 0)
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            newlines = _count(view, b"\n", data_start, size)
            estimated = newlines + (0 if view[size - 1:size] == b"\n" else 1)
            wanted = max(1, min(parts, (size - data_start) // max(min_part_bytes, 1)))
            starts = _split_points(view, options.quote.encode(codec(options)), data_start, size, wanted)
            bounds = [*starts, size]
            layout, line = [], first_line
            for start, end in itertools.pairwise(bounds):
                layout.append(Part(start=start, end=end, first_line=line))
                line += _count(view, b"\n", start, end)
    return Layout(columns, layout, estimated)


def _count(view: mmap.mmap, needle: bytes, start: int, end: int) -> int:
    total = 0
    for block in range(start, end, BLOCK):
        total += view[block:min(block + BLOCK, end)].count(needle)
    return total


def _split_points(view: mmap.mmap, quote: bytes, start: int, size: int, parts: int) -> list[int]:
    """Part starts: `start`, then line starts near equal shares of the file, outside quotes."""
    points = [start]
    inside, scanned = False, start
    for k in range(1, parts):
        target = max(start + (size - start) * k // parts, points[-1] + 1)
        position = view.find(b"\n", target)
        while position != -1:
            candidate = position + 1
            inside ^= _count(view, quote, scanned, candidate) % 2 == 1
            scanned = candidate
            if not inside:
                break
            position = view.find(b"\n", candidate)
        if position == -1 or scanned >= size:
            break
        points.append(scanned)
    return points


def csv_rows(path: Path, part: Part, options: CsvOptions, *, columns: int) -> Iterator[Row]:
    """The part's records, each with the line it starts on; blank lines are skipped."""
    name = codec(options)
    undecodable: set[int] = set()

    def lines(file: IO[bytes]) -> Iterator[str]:
        file.seek(part.start)
        position, index = part.start, 0
        while position < part.end:
            raw = file.readline()
            if not raw:
                return
            position += len(raw)
            try:
                text = raw.decode(name)
            except UnicodeDecodeError:
                text = raw.decode(name, errors="replace")
                undecodable.add(index)
            if index == 0 and part.start == 0 and text.startswith("\ufeff"):
                text = text[1:]
            index += 1
            yield text

    with path.open("rb") as file:
        reader = _reader(lines(file), options)
        consumed = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error:
                line, consumed = part.first_line + consumed, reader.line_num
                yield Row(line, None, "is not well-formed delimited text (check quotes around the cells)")
                continue
            line = part.first_line + consumed
            span = range(consumed, reader.line_num)
            consumed = reader.line_num
            if not record:
                continue
            if undecodable and any(i in undecodable for i in span):
                yield Row(line, None, f"is not valid {options.encoding} text")
            elif len(record) != columns:
                yield Row(line, None, f"has {len(record)} columns where the header has {columns}")
            else:
                yield Row(line, record)


# --- Parquet ------------------------------------------------------------------------------------------


def parquet_columns(tail: bytes) -> list[str]:
    """Column names from the last bytes of a Parquet file (its footer must be among them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise UnreadableFile("the file is not Apache Parquet (no PAR1 footer)")
    footer = int.from_bytes(tail[-8:-4], "little")
    if footer + 8 > len(tail):
        raise UnreadableFile("the Parquet footer is larger than expected")
    try:
        return list(pq.ParquetFile(pa.BufferReader(b"PAR1" + tail[-(footer + 8):])).schema_arrow.names)
    except Exception as exc:  # pyarrow raises several types for a corrupt footer
        raise UnreadableFile("the Parquet footer cannot be read") from exc


def footer_length(tail: bytes) -> int:
    """How many bytes from the end of a Parquet file hold its footer (0 when not Parquet)."""
    if len(tail) < 8 or tail[-4:] != b"PAR1":
        return 0
    return int.from_bytes(tail[-8:-4], "little") + 8


def plan_parquet(path: Path, *, parts: int) -> Layout:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        columns = list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as exc:
        raise UnreadableFile("the file cannot be read as Apache Parquet") from exc
    counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    share = max(1, -(-sum(counts) // max(parts, 1)))
    layout: list[Part] = []
    groups: list[int] = []
    first, rows = 1, 0
    for index, count in enumerate(counts):
        groups.append(index)
        rows += count
        if rows >= share:
            layout.append(Part(first_line=first, row_groups=tuple(groups)))
            first, groups, rows = first + rows, [], 0
    if groups:
        layout.append(Part(first_line=first, row_groups=tuple(groups)))
    return Layout(columns, layout, sum(counts))


def parquet_rows(path: Path, part: Part, *, columns: Sequence[str]) -> Iterator[Row]:
    """The part's rows as cells of the named columns, in file order."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = list(columns)
    line = part.first_line
    for batch in file.iter_batches(batch_size=BATCH_ROWS, row_groups=list(part.row_groups), columns=names):
        values = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for cells in zip(*values, strict=True):
            yield Row(line, [_cell(v) for v in cells])
            line += 1


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
