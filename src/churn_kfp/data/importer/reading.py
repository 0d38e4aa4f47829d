"""Reading an export: CSV with any delimiter, whitespace-aligned columns, or Parquet.

:func:`read_export` reads the columns the mapping names, as text, with the mapping's
``na_values`` as null. CSV is parsed by Arrow's multi-threaded reader; whitespace-aligned
text is first rewritten with single blanks between its fields (:func:`collapse_blanks`,
vectorised). Text in another encoding is transcoded to UTF-8 first. Problems that make
the file unreadable raise :class:`~churn_kfp.data.importer.errors.ImportRefused` naming
the column and an example.
"""

from __future__ import annotations

import csv
import difflib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churn_kfp.data.importer.errors import ImportRefused
from churn_kfp.data.importer.mapping import ImportMapping
from churn_kfp.data.importer.values import na_array

__all__ = ["RawExport", "collapse_blanks", "read_export"]

_SNIFF_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_PARQUET_MAGIC = b"PAR1"
_BINARY_FORMATS = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)", "export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (Excel .xls)", "export the sheet as CSV"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ", "xz-compressed", "decompress it first (unxz)"),
    (b"%PDF", "a PDF document", "export the data as CSV"),
)
_TEXT_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")
# Never in text (tab, line ends, form feed, ESC and the DOS end-of-file mark 0x1a may be).
_CONTROL_BYTES = bytes([*range(0, 9), 11, *range(14, 26), *range(28, 32)])


@dataclass
class RawExport:
    """The export's mapped columns, as read, and how they were read."""

    table: pa.Table
    info: dict[str, Any]
    malformed: int = 0
    malformed_example: str | None = None


def read_export(data: bytes, mapping: ImportMapping, name: str) -> RawExport:
    """Reads the mapped columns of an export (CSV, whitespace-aligned text or Parquet).

    Text files are read as text: every column a string, the mapping's ``na_values`` null,
    lines without the header's number of fields counted (not read). Without a delimiter
    (or a format) in the mapping they are sniffed from the first lines.

    Raises:
        ImportRefused: An empty file, a wrong encoding, a mapped column the file does not
            have, or a file that cannot be parsed.
    """
    fmt = mapping.format
    if fmt == "auto" and (data[:4] == _PARQUET_MAGIC or name.lower().endswith((".parquet", ".pq"))):
        fmt = "parquet"
    if fmt == "parquet":
        return _read_parquet(data, mapping, name)
    _refuse_binary(data, name, mapping.encoding)
    if data[:3] == b"\xef\xbb\xbf" and mapping.encoding == "utf-8":
        data = data[3:]  # a UTF-8 byte-order mark (Excel writes one)
    sample = data[:_SNIFF_BYTES].decode(mapping.encoding, errors="replace")
    lines = [line for line in sample.splitlines()[mapping.skip_rows :] if line.strip()]
    if len(data) > _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut
    if not lines:
        raise ImportRefused(name, None, "empty file (nothing after the skipped rows)")
    delimiter = mapping.delimiter
    if fmt == "auto" or (fmt == "csv" and delimiter is None):
        fmt, delimiter = _sniff(lines, fmt)
    names = list(mapping.names) if mapping.names else None
    if names is not None:
        file_columns = names
    elif fmt == "whitespace":
        file_columns = lines[0].split()
    else:
        header = _split_csv_line(lines[0], delimiter or ",", mapping.quotechar)
        file_columns = [c.strip() for c in header]
        if file_columns != header:  # " total " in the header: read it as "total"
            names = file_columns
    info = {
        "format": fmt,
        "delimiter": delimiter,
        "encoding": mapping.encoding,
        "header": mapping.header,
        "columns": file_columns,
    }
    data = _as_utf8(data, mapping, name, fmt, delimiter, file_columns)
    _check_columns(mapping, file_columns, name, lines[0], fmt, delimiter)
    text: bytes | memoryview = collapse_blanks(data) if fmt == "whitespace" else data
    del data  # once collapsed, a transcoded copy is freed before the parse
    return _parse_text(text, mapping, name, fmt, delimiter, info, names)


def _refuse_binary(data: bytes, name: str, encoding: str) -> None:
    """Refuses a file that is not text (a workbook, an archive...) before any encoding advice."""
    for magic, what, todo in _BINARY_FORMATS:
        if data.startswith(magic):
            raise ImportRefused(
                name,
                None,
                f"not a text file: {what}",
                hint=f"{todo[0].upper()}{todo[1:]}, then import that",
            )
    if encoding.replace("-", "").startswith(("utf16", "utf32")) or data.startswith(_TEXT_BOMS):
        return  # wide text has NUL bytes
    head = data[:_SNIFF_BYTES]
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head or control * 100 > len(head):
        at = next(i for i, b in enumerate(head) if b in _CONTROL_BYTES)
        raise ImportRefused(
            name,
            None,
            f"binary content, not text: {control:,} control byte(s) in the first "
            f"{len(head):,} bytes (the first, 0x{head[at]:02x}, at byte {at:,})",
            hint="Import a CSV, whitespace-aligned text or Parquet export of the data (if it "
            "is UTF-16 text, set 'encoding: utf-16' in the mapping)",
        )


def _sniff(lines: list[str], fmt: str) -> tuple[str, str | None]:
    sample = "\n".join(lines[:50])
    try:
        return "csv", csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        pass
    if fmt == "auto":
        widths = {len(line.split()) for line in lines[:50]}
        if len(widths) == 1 and widths.pop() > 1:
            return "whitespace", None
    return "csv", ","


def _split_csv_line(line: str, delimiter: str, quotechar: str | None) -> list[str]:
    quoting: Literal[0, 3] = csv.QUOTE_MINIMAL if quotechar else csv.QUOTE_NONE
    return next(
        csv.reader([line], delimiter=delimiter, quotechar=quotechar or '"', quoting=quoting)
    )


def _as_utf8(
    data: bytes,
    mapping: ImportMapping,
    name: str,
    fmt: str,
    delimiter: str | None,
    file_columns: list[str],
) -> bytes:
    """Checks that the bytes decode with the mapping's encoding; returns them as UTF-8."""
    if mapping.encoding == "utf-8" and data.isascii():
        return data  # ASCII is valid UTF-8: no need to decode a copy
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_end = data.find(b"\n", exc.start)
        line = data[line_start : line_end if line_end >= 0 else len(data)]
        before = line[: exc.start - line_start].decode(mapping.encoding, errors="replace")
        if fmt == "whitespace":
            index = len(before.split()) - (0 if before[-1:].isspace() or not before else 1)
        else:
            index = before.count(delimiter or ",")
        column = file_columns[index] if 0 <= index < len(file_columns) else None
        fields = line.split() if fmt == "whitespace" else line.split((delimiter or ",").encode())
        bad = next((f for f in fields if _undecodable(f, mapping.encoding)), line)
        line_number = data.count(b"\n", 0, exc.start) + 1
        raise ImportRefused(
            name,
            column,
            f"not valid {mapping.encoding} text: byte 0x{data[exc.start]:02x} on line "
            f"{line_number}",
            example=bad.decode("latin-1").strip(),
            hint=f"Set the file's encoding in the mapping, e.g. 'encoding: "
            f"{_guess_encoding(data)}'",
        ) from None
    if mapping.encoding == "utf-8":
        return data
    return text.lstrip("\ufeff").encode("utf-8")


def _undecodable(value: bytes, encoding: str) -> bool:
    try:
        value.decode(encoding)
    except UnicodeDecodeError:
        return True
    return False


def _guess_encoding(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _check_columns(
    mapping: ImportMapping,
    file_columns: list[str],
    name: str,
    first_line: str,
    fmt: str,
    delimiter: str | None,
) -> None:
    available = set(file_columns)
    for target, column in mapping.columns.items():
        if column in available:
            continue
        if len(file_columns) == 1:
            found = {d: first_line.count(d) for d in _SNIFF_DELIMITERS if d != delimiter}
            best = max(found, key=lambda d: found[d]) if any(found.values()) else None
            how = (
                "as whitespace-aligned columns"
                if fmt == "whitespace"
                else f"with delimiter {delimiter!r}"
            )
            hint = (
                f"Read {how}, the file has a single column {file_columns[0]!r}: "
                "the delimiter looks wrong"
            )
            if best:
                change = "format: csv and " if fmt == "whitespace" else ""
                setting = f"{change}delimiter: {json.dumps(best)}"
                hint += f"; the first line splits on {best!r} (set {setting})"
        else:
            close = difflib.get_close_matches(column, file_columns, n=1)
            hint = f"The file has columns {file_columns}" + (
                f"; did you mean {close[0]!r}?" if close else ""
            )
        raise ImportRefused(
            name,
            column,
            f"mapped column (columns.{target}) not found",
            example=first_line[:120],
            hint=hint,
        )


def collapse_blanks(data: bytes, block: int = 1 << 19) -> memoryview:
    """Rewrites whitespace-aligned columns as single-space-separated ones (vectorised).

    Runs of blanks (spaces, tabs) become one space; blanks at the start or end of a line
    go. The result can then be parsed by Arrow's multi-threaded CSV reader. Works through
    blocks of whole lines (cache-sized: four times faster than one pass over a big file)
    on every core (numpy releases the GIL), into one buffer.
    """
    spans, start = [], 0
    while start < len(data):
        end = min(start + block, len(data))
        if end < len(data):
            newline = data.find(b"\n", end)
            end = len(data) if newline < 0 else newline + 1
        spans.append((start, end))
        start = end
    out = np.empty(len(data), dtype=np.uint8)
    size = 0
    with ThreadPoolExecutor(max_workers=pa.cpu_count()) as pool:
        for part in pool.map(lambda span: _collapse_block(data, *span), spans):
            out[size : size + part.size] = part
            size += part.size
    return out[:size].data


def _collapse_block(data: bytes, start: int, end: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    tabs = data.find(b"\t", start, end) >= 0  # most files have none: skip their passes
    blank = b == 32
    if tabs:
        blank |= b == 9
    edges = np.diff(blank.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    del edges
    before = b[np.maximum(starts - 1, 0)]
    after = b[np.minimum(ends, b.size - 1)]
    inner = (before != 10) & (before != 13) & (starts > 0)
    inner &= (after != 10) & (after != 13) & (ends < b.size)
    keep = ~blank
    keep[starts[inner]] = True
    out = b[keep]
    if tabs:
        out[out == 9] = 32
    return out


def _parse_text(
    data: bytes | memoryview,
    mapping: ImportMapping,
    name: str,
    fmt: str,
    delimiter: str | None,
    info: dict[str, Any],
    names: list[str] | None,
) -> RawExport:
    columns = mapping.source_columns()
    malformed: list[str] = []

    def on_invalid_row(row) -> str:
        malformed.append(row.text)
        return "skip"

    skip = mapping.skip_rows + (1 if mapping.header and names else 0)
    read_options = pacsv.ReadOptions(
        use_threads=True,
        block_size=1 << 22,
        skip_rows=skip,
        column_names=names,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=" " if fmt == "whitespace" else delimiter,
        quote_char=False if fmt == "whitespace" or not mapping.quotechar else mapping.quotechar,
        ignore_empty_lines=True,
        invalid_row_handler=on_invalid_row,
    )
    convert_options = pacsv.ConvertOptions(
        include_columns=columns,
        column_types={c: pa.string() for c in columns},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=list(mapping.na_values),
        check_utf8=False,  # checked (or transcoded) by _as_utf8
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise ImportRefused(name, None, f"cannot be parsed as {fmt}: {detail}") from None
    return RawExport(
        table=table,
        info=info,
        malformed=len(malformed),
        malformed_example=malformed[0] if malformed else None,
    )


def _read_parquet(data: bytes, mapping: ImportMapping, name: str) -> RawExport:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        file_columns = list(parquet.schema_arrow.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ImportRefused(name, None, f"cannot be read as Parquet: {exc}") from None
    info = {
        "format": "parquet",
        "delimiter": None,
        "encoding": None,
        "header": True,
        "columns": file_columns,
    }
    _check_columns(mapping, file_columns, name, ", ".join(file_columns), "parquet", None)
    table = parquet.read(columns=mapping.source_columns())
    for index, column in enumerate(table.columns):  # like the CSV reader's null_values
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
            tokens = pc.is_in(column, value_set=na_array(mapping.na_values))
            column = pc.if_else(tokens, pa.scalar(None, pa.string()), column)
            table = table.set_column(index, table.column_names[index], column)
    return RawExport(table=table, info=info)
