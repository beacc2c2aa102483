"""Reading the tables businesses really export: CSV dialects, encodings, gzip, Excel and Parquet.

One place decides how a file is read, for both readers: DuckDB (`churn.sources`, data folders) and pandas
(`churn.io.read_table`: `--table`, contact history, exclusions, customer lists).

- Delimiter and quote: the standard library's `csv.Sniffer` on the first 64 KiB (restricted to
  ``,`` ``;`` tab ``|``), checked against a field-count consistency test and overridable by config. clevercsv
  detects dialects more robustly on odd files, but it is not in the lock file and the four delimiters and
  two quote characters exported by real systems are what Sniffer plus the check handle.
- Encoding: UTF-8 (a BOM is skipped) unless the config names another (``cp1250``, ``latin-1``, ...).
  Invalid UTF-8 is an error that says where and suggests the encoding `charset_normalizer` (already
  installed with `requests`) detects; a guess is never applied silently, since a wrong legacy code page
  turns names into other valid but wrong letters.
- ``.csv.gz`` is decompressed on the fly; ``.xlsx`` workbooks are read with openpyxl (first or named sheet).
- Header rows that repeat a column name (trimmed, any case) are an error: which copy would count is
  unknowable, and pandas and DuckDB would silently rename one of them.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churn.errors import ChurnError

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
LEGACY_CANDIDATES = ("cp1250", "cp1252", "latin_1", "iso8859_2", "cp1257", "cp1254", "cp1256", "cp1251", "utf_16")
LEGACY_HINT = "cp1250 for Central European systems, latin-1 or cp1252 for Western European ones"


@dataclass(frozen=True)
class CsvDialect:
    """How to read one CSV file."""

    delimiter: str
    quote: str
    encoding: str  # a Python codec name; "utf-8" means UTF-8 with an optional BOM
    compression: str | None  # "gzip" or None
    header: tuple[str, ...]  # the column names, as the file spells them

    @property
    def utf8(self) -> bool:
        """Whether the file is UTF-8 (DuckDB reads it directly; other encodings go through Python)."""
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")


def suffixes(path: Path) -> str:
    """The lower-case compound suffix that decides the reader (".csv.gz", ".xlsx", ".parquet", ...)."""
    name = path.name.lower()
    for s in (".csv.gz", ".tsv.gz", ".txt.gz"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


def is_parquet(path: Path) -> bool:
    """A Parquet file or a folder of Parquet parts."""
    return path.is_dir() or path.suffix.lower() == ".parquet"


def is_excel(path: Path) -> bool:
    """An Excel workbook (openpyxl reads .xlsx and .xlsm; the old binary .xls is not supported)."""
    return path.suffix.lower() in EXCEL_SUFFIXES


def _compression(path: Path) -> str | None:
    return "gzip" if path.suffix.lower() == ".gz" else None


def _head_bytes(path: Path, n: int = SNIFF_BYTES) -> bytes:
    """The first `n` bytes of the file's content (decompressed for .gz)."""
    try:
        if _compression(path) == "gzip":
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        with open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise ChurnError(f"{path}: cannot read the file ({type(exc).__name__}: {exc}); is it a complete "
                         "gzip/CSV file?") from None


def guess_encoding(sample: bytes) -> str | None:
    """The legacy encoding `charset_normalizer` finds most plausible for `sample`, if any."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - installed with requests, which mlflow needs
        return None
    # Only the code pages business exports in this project's markets use: unrestricted, a short European
    # sample is sometimes "detected" as Korean (johab) or another far-fetched one.
    best = from_bytes(sample, cp_isolation=list(LEGACY_CANDIDATES)).best()
    return best.encoding if best is not None else None


def encoding_error(path: Path, data: bytes, position: int, setting: str | None) -> ChurnError:
    """The error for bytes that are not UTF-8: line, the bytes, a suggested encoding and where to set it."""
    line = data[:position].count(b"\n") + 1
    bad = data[position:position + 4]
    guess = guess_encoding(data[max(0, position - 4096):position + 4096])
    suggest = f"it looks like {guess} (a guess); " if guess and guess not in ("utf_8", "ascii") else ""
    where = (f"set {setting}: <encoding>" if setting else "save it as UTF-8")
    return ChurnError(
        f"{path}: line {line} is not valid UTF-8 (bytes {bad!r}); {suggest}legacy exports need their encoding "
        f"({LEGACY_HINT}): {where}, e.g. encoding: {guess if suggest else 'cp1250'}"
    )


def _decode_head(path: Path, raw: bytes, encoding: str, setting: str | None, complete: bool) -> str:
    """Decode the sampled head; a multi-byte character cut at the sample's end is not an error."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise ChurnError(f"{path}: unknown encoding {encoding!r}"
                         + (f" (set in {setting})" if setting else "")
                         + f"; e.g. utf-8, {LEGACY_HINT}") from None
    try:
        text = decoder.decode(raw, final=complete)
    except UnicodeDecodeError as exc:
        raise encoding_error(path, raw, exc.start, setting) from None
    return text.removeprefix("\ufeff")


def first_invalid_utf8(path: Path) -> tuple[bytes, int] | None:
    """Where the file's content first stops being UTF-8: (the bytes up to a little past it, its offset).

    Only the newlines before the bad byte matter for the line number, so earlier chunks are kept as their
    newlines alone (the file may be gigabytes)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if _compression(path) == "gzip" else open
    newlines = 0
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = max(exc.start, 0)
                prefix = b"\n" * newlines
                return prefix + chunk[:pos + 4096], newlines + pos
            newlines += chunk.count(b"\n")
    return None


def _complete_lines(text: str, complete: bool) -> str:
    """The sample without its possibly cut last line (a partial line misleads the sniffer)."""
    if complete:
        return text
    body = text.rstrip("\r\n")
    return body[: body.rfind("\n")] if "\n" in body else text


def _rows(text: str, delimiter: str, quote: str, limit: int = 200) -> list[list[str]]:
    """The sample's first rows split with a dialect (a broken quote makes the rest one field; that is fine)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote)
    out: list[list[str]] = []
    try:
        for row in reader:
            if row:
                out.append(row)
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def _consistency(text: str, delimiter: str, quote: str) -> tuple[float, int]:
    """(share of rows with the header's field count, header field count) for one candidate delimiter."""
    rows = _rows(text, delimiter, quote)
    if not rows:
        return 0.0, 0
    width = len(rows[0])
    if width < 2:
        return 0.0, width
    same = sum(len(r) == width for r in rows)
    return same / len(rows), width


def _sniff(text: str, default: str) -> tuple[str, str]:
    """(delimiter, quote) of a decoded sample: csv.Sniffer, kept only if it splits the rows consistently
    at least as well as any other candidate; otherwise the most consistent candidate; else `default`."""
    quote = '"'
    sniffed: str | None = None
    try:
        d = csv.Sniffer().sniff(text, delimiters=DELIMITERS)
        sniffed, quote = d.delimiter, (d.quotechar if d.quotechar in ('"', "'") else '"')
    except csv.Error:
        pass
    scores = {c: _consistency(text, c, quote) for c in DELIMITERS}
    best = max(scores, key=lambda c: (scores[c], c == default))
    # A delimiter that leaves the header one column is no delimiter (a one-column list: the default).
    if sniffed is not None and scores[sniffed][1] >= 2 and scores[sniffed] >= scores[best]:
        return sniffed, quote
    if scores[best][1] >= 2 and scores[best][0] > 0.5:
        return best, quote
    return default, quote


def check_header(path: Path, header: list[str] | tuple[str, ...]) -> None:
    """Refuse a header that names a column twice (trimmed, any case)."""
    seen: dict[str, str] = {}
    dupes: list[str] = []
    for name in header:
        key = str(name).strip().casefold()
        if key and key in seen and name not in dupes:
            dupes.append(str(name))
        seen.setdefault(key, str(name))
    if dupes:
        raise ChurnError(f"{path}: column(s) {', '.join(repr(d) for d in dupes)} appear more than once in the "
                         "header; rename or remove the copies")


def detect_dialect(path: str | os.PathLike[str], *, delimiter: str | None = None, quote: str | None = None,
                   encoding: str | None = None, setting: str | None = None) -> CsvDialect:
    """How to read a CSV export: delimiter, quote, encoding, compression and its header.

    Explicit arguments (from the config) win; the rest is detected from the first 64 KiB. `setting` names
    the config key prefix for error messages (e.g. ``sources.tables.orders.encoding``).
    """
    p = Path(path)
    raw = _head_bytes(p)
    complete = len(raw) < SNIFF_BYTES
    enc = encoding or "utf-8"
    text = _decode_head(p, raw, enc, setting, complete)
    if not text.strip():
        raise ChurnError(f"{p}: the file is empty (no header row)")
    default = "\t" if suffixes(p) in (".tsv", ".tsv.gz") else ","
    sample = _complete_lines(text, complete)
    if delimiter is None:
        delimiter, sniffed_quote = _sniff(sample, default)
        quote = quote or sniffed_quote
    quote = quote or '"'
    rows = _rows(sample, delimiter, quote, limit=1)
    header = tuple(rows[0]) if rows else ()
    check_header(p, header)
    return CsvDialect(delimiter, quote, enc, _compression(p), header)


def sniff_delimiter(path: str | os.PathLike[str], default: str = ",") -> str:
    """The delimiter of a CSV export (`,` `;` tab or `|`); `default` when its first lines do not tell."""
    p = Path(path)
    raw = _head_bytes(p)
    complete = len(raw) < SNIFF_BYTES
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=complete)
    return _sniff(_complete_lines(text.removeprefix("\ufeff"), complete), default)[0]


def parquet_columns(path: Path) -> list[str]:
    """Column names of a Parquet file (the first part of a folder), as stored: DuckDB renames a repeated
    name (``Timestamp`` next to ``timestamp`` becomes ``Timestamp_1``), so the header check reads them here."""
    import pyarrow.parquet as pq

    first = min(path.glob("*.parquet")) if path.is_dir() else path
    try:
        return list(pq.read_schema(first).names)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is the user's file
        raise ChurnError(f"{first}: not a readable Parquet file ({type(exc).__name__}: {exc}); is it complete "
                         "(not truncated)?") from None


def read_excel(path: Path, sheet: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """One sheet of a workbook (the first unless named) as text columns, the first row as header."""
    try:
        import openpyxl  # noqa: F401 - a clear error below if it is missing
    except ImportError:  # pragma: no cover - a main dependency
        raise ChurnError(f"{path}: reading Excel workbooks needs openpyxl (pip install openpyxl)") from None
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's file
        raise ChurnError(f"{path}: not a readable Excel workbook ({type(exc).__name__}: {exc})") from None
    with book:
        if sheet is not None and sheet not in book.sheet_names:
            raise ChurnError(f"{path}: no sheet named {sheet!r}; the workbook has: "
                             + ", ".join(repr(s) for s in book.sheet_names))
        # header=None: our own header check sees duplicates that pandas would rename to "x.1".
        df = pd.read_excel(book, sheet_name=sheet if sheet is not None else 0, header=None, dtype=str,
                           keep_default_na=False, na_values=[""])
    if df.empty:
        raise ChurnError(f"{path}: sheet {sheet or book.sheet_names[0]!r} is empty (no header row)")
    header = [f"column{i + 1}" if pd.isna(v) or not str(v).strip() else str(v).strip()
              for i, v in enumerate(df.iloc[0])]
    check_header(path, header)
    df = df.iloc[1:].reset_index(drop=True)
    df.columns = header
    # Fully blank rows (formatting below the data) are not customers.
    df = df.dropna(how="all")
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ChurnError(f"{path}: column(s) {missing} not found; the sheet has: {', '.join(header)}")
        df = df[columns]
    return df.reset_index(drop=True)


def read_csv_frame(path: Path, dialect: CsvDialect, columns: list[str] | None = None,
                   setting: str | None = None) -> pd.DataFrame:
    """A CSV file as text columns (ids keep leading zeros; the caller converts numbers and dates)."""
    enc = "utf-8-sig" if dialect.utf8 else dialect.encoding
    try:
        return pd.read_csv(path, dtype=str, sep=dialect.delimiter, quotechar=dialect.quote, usecols=columns,
                           keep_default_na=False, na_values=[""], encoding=enc, compression=dialect.compression)
    except UnicodeDecodeError:
        found = first_invalid_utf8(path)
        if found is None:  # pragma: no cover - pandas said so, so there is a bad byte
            raise ChurnError(f"{path}: not valid {dialect.encoding}") from None
        raise encoding_error(path, found[0], found[1], setting) from None
    except pd.errors.EmptyDataError:
        raise ChurnError(f"{path}: the file is empty (no header row)") from None
    except pd.errors.ParserError as exc:
        raise ChurnError(f"{path}: cannot split the file into columns with delimiter {dialect.delimiter!r} "
                         f"({exc}); set the table's csv_delimiter if it was detected wrongly") from None


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None, *, delimiter: str | None = None,
               quote: str | None = None, encoding: str | None = None, sheet: str | None = None,
               setting: str | None = None) -> pd.DataFrame:
    """Read a CSV (any common dialect, .csv.gz), Excel or Parquet table into pandas.

    CSV and Excel columns stay text (ids like "007" keep their zeros; numbers are converted by the caller).
    Every failure is a `ChurnError` naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise ChurnError(f"{p}: file does not exist")
    try:
        if is_parquet(p):
            df = pd.read_parquet(p, columns=columns)
        elif is_excel(p):
            df = read_excel(p, sheet, columns)
        else:
            dialect = detect_dialect(p, delimiter=delimiter, quote=quote, encoding=encoding, setting=setting)
            df = read_csv_frame(p, dialect, columns, setting)
        # Later checks on the frame (contact history, exclusions) name the file in their errors.
        df.attrs["source"] = str(p)
        return df
    except ChurnError:
        raise
    except ValueError as exc:
        raise ChurnError(f"{p}: cannot read table: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file, say which
        hint = "; is the Parquet file complete (not truncated)?" if is_parquet(p) else ""
        raise ChurnError(f"{p}: cannot read table ({type(exc).__name__}: {exc}){hint}") from None


_SLASHED_DATE = r"^\s*(\d{1,2})[/-](\d{1,2})[/-]\d{4}"
_TIME_LAYOUTS = ("", " %H:%M", " %H:%M:%S", "T%H:%M:%S", " %H:%M:%S.%f")


def parse_dates(values: pd.Series, *, day_first: bool | None = None) -> pd.Series:
    """Text or datetime values as UTC instants (NaT where unreadable), read as the source loader reads them.

    ISO 8601 (any precision, offsets honoured; naive means UTC) first; then day-first layouts (31.12.2024,
    31/12/2024 10:00) or, when the values show a second part above 12 and no first part above 12 (or
    `day_first` is False), month-first slashed ones. dateutil's guessing is not used: it reads "May" as
    0001-05-01 and 05.03.2024 as the 3rd of May.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    text = values.astype("string").str.strip()
    text = text.where(text != "")
    out = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    rest = out.isna() & text.notna()
    if not rest.any():
        return out
    if day_first is None:
        parts = text[rest].str.extract(_SLASHED_DATE).astype(float)
        first, second = (parts[0] > 12).any(), (parts[1] > 12).any()
        day_first = not (second and not first)
    layouts = ["%d.%m.%Y", "%d.%m.%y"] + [f"%d{s}%m{s}%Y" if day_first else f"%m{s}%d{s}%Y" for s in "/-"]
    for layout in (d + t for d in layouts for t in _TIME_LAYOUTS):
        if not rest.any():
            break
        parsed = pd.to_datetime(text[rest], errors="coerce", utc=True, format=layout)
        out[rest] = parsed
        rest = out.isna() & text.notna()
    return out
