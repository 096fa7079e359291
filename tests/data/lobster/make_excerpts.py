"""Rebuild the committed LOBSTER excerpts from the full sample files.

Each excerpt is a zip named and laid out like the original sample
(``LOBSTER_SampleFile_GOOG_2012-06-21_N.zip`` holding ``..._message_N.csv``,
``..._orderbook_N.csv`` and the README) with only the first ``EXCERPT_ROWS`` rows of each
CSV, byte for byte. Run from the repository root, with the shared data folder beside it::

    python tests/data/lobster/make_excerpts.py
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from tickplane.engine.lobster import EXCERPT_ROWS, shared_paths

HERE = Path(__file__).resolve().parent


def _head(data: bytes, rows: int) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:rows])


def main() -> int:
    """Write the excerpts next to this file; return a process exit code."""
    full = shared_paths()
    if full is None:
        print("the shared LOBSTER sample files were not found", file=sys.stderr)
        return 1
    for levels, source in sorted(full.items()):
        target = HERE / source.name
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.lower().endswith(".csv"):
                    data = _head(data, EXCERPT_ROWS)
                out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                out.compress_type = zipfile.ZIP_DEFLATED
                out.external_attr = 0o644 << 16
                dst.writestr(out, data, compresslevel=9)
        print(f"{target.name}: {target.stat().st_size:,} bytes ({levels} levels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
