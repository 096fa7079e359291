"""Journal benchmarks: append + commit throughput per fsync policy, and recovery time.

Every figure is the median of ``repeats`` timed samples (after one untimed warm-up),
on real files in ``--dir`` (default ``~/.cache/tickplane/bench/journal``: a disk, not
a tmpfs where fsync costs nothing; the report names the filesystem):

- ``always``: one command per record, each append fsynced before it returns
  (``always_appends_per_sec``); the fsync durations the writer measured (p50, p99).
- ``batch``: as the engine does it, ``group`` appends of one command each, then one
  ``commit`` (one write, one fsync): commands and commits per second.
- ``none``: the same groups, committed to the operating system without fsync.
- ``append_ns``: the CPU cost of one buffered append (``batch``, no commit in the
  timed section).
- recovery: one million commands journaled (a) one command per record, the worst case
  (as with ``always``), and (b) ``group`` commands per record; the seconds
  ``read_runs`` takes to read them back into ``COMMAND_DTYPE`` arrays, verifying every
  checksum, per million commands: from the page cache (the files were just written),
  and cold (``recovery_cold_*``: the files dropped from the page cache first with
  ``posix_fadvise(DONTNEED)``, which touches no other file on the machine).

Run: ``python -m tests.benchmarks.bench_journal`` (one JSON object on stdout).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tickplane.engine.journal import CommandRun, JournalWriter, RecordType, read_runs
from tickplane.engine.matching import COMMAND_DTYPE, Op

__all__ = ["run"]

GROUP = 64
ALWAYS_APPENDS = 500
BATCH_COMMITS = 200
NONE_COMMITS = 2000
RECOVERY_COMMANDS = 1_000_000


def _commands(n: int) -> npt.NDArray[np.void]:
    arr = np.zeros(n, COMMAND_DTYPE)
    arr["id"] = np.arange(1, n + 1)
    arr["qty"] = 100
    arr["price"] = 10_000 + np.arange(n) % 50
    arr["op"] = Op.NEW
    arr["side"] = np.arange(n) % 2
    return arr


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/mounts; "" if unknown)."""
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3 or len(fields[1]) < len(best):
            continue
        if (target + "/").startswith(fields[1].rstrip("/") + "/"):
            best, kind = fields[1], fields[2]
    return kind


def _samples(repeats: int, sample: Callable[[], float]) -> list[float]:
    sample()  # warm-up
    out = []
    for _ in range(repeats):
        gc.collect()
        out.append(sample())
    return out


def _evict(directory: Path) -> None:
    """Drop the directory's files from the page cache (they are clean: the writer
    fsynced them on close), so the next read comes from the disk."""
    for f in directory.iterdir():
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def run(directory: Path | None = None, repeats: int = 5) -> dict[str, Any]:
    """Run every journal benchmark once; return one JSON-ready dict."""
    base = directory or Path.home() / ".cache" / "tickplane" / "bench" / "journal"
    base.mkdir(parents=True, exist_ok=True)
    payload = _commands(1).tobytes()
    command = RecordType.COMMAND
    result: dict[str, Any] = {
        "filesystem": _filesystem(base),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "group": GROUP,
    }
    fsyncs: list[float] = []

    def always() -> float:
        with JournalWriter(_fresh(base / "always"), "always", on_fsync=fsyncs.append) as w:
            t0 = time.perf_counter()
            for _ in range(ALWAYS_APPENDS):
                w.append(command, payload)
            return ALWAYS_APPENDS / (time.perf_counter() - t0)

    def grouped(policy: str, commits: int) -> Callable[[], float]:
        def sample() -> float:
            with JournalWriter(_fresh(base / policy), policy, group_commit_us=10**9) as w:
                t0 = time.perf_counter()
                for _ in range(commits):
                    for _ in range(GROUP):
                        w.append(command, payload)
                    w.commit()
                return commits * GROUP / (time.perf_counter() - t0)

        return sample

    def append_cost() -> float:
        n = 100_000
        with JournalWriter(
            _fresh(base / "append"), "batch", group_commit_us=10**9, max_pending_bytes=1 << 30
        ) as w:
            t0 = time.perf_counter()
            for _ in range(n):
                w.append(command, payload)
            return (time.perf_counter() - t0) / n * 1e9

    result["always_appends_per_sec"] = statistics.median(_samples(repeats, always))
    fs = sorted(fsyncs)
    result["always_fsync_p50_us"] = fs[len(fs) // 2] * 1e6
    result["always_fsync_p99_us"] = fs[int(len(fs) * 0.99)] * 1e6
    batch = statistics.median(_samples(repeats, grouped("batch", BATCH_COMMITS)))
    result["batch_commands_per_sec"] = batch
    result["batch_commits_per_sec"] = batch / GROUP
    result["none_commands_per_sec"] = statistics.median(
        _samples(repeats, grouped("none", NONE_COMMITS))
    )
    result["append_ns"] = statistics.median(_samples(repeats, append_cost))

    commands = _commands(RECOVERY_COMMANDS)
    for name, per_record in (("1_per_record", 1), (f"{GROUP}_per_record", GROUP)):
        d = _fresh(base / f"recovery-{per_record}")
        with JournalWriter(d, "none", group_commit_us=10**9) as w:
            for k in range(0, RECOVERY_COMMANDS, per_record):
                w.append_commands(commands[k : k + per_record])
                if k % (per_record * 4096) == 0:
                    w.commit()

        def recovery(d: Path = d, cold: bool = False) -> float:
            if cold:
                _evict(d)
            t0 = time.perf_counter()
            n = 0
            for run_ in read_runs(d):
                assert isinstance(run_, CommandRun)
                n += len(run_.commands)
            seconds = time.perf_counter() - t0
            assert n == RECOVERY_COMMANDS
            return seconds * 1e6 / n

        result[f"recovery_seconds_per_million_commands_{name}"] = statistics.median(
            _samples(repeats, recovery)
        )
        if hasattr(os, "posix_fadvise"):
            result[f"recovery_cold_seconds_per_million_commands_{name}"] = statistics.median(
                _samples(repeats, partial(recovery, d, cold=True))
            )
        result[f"journal_bytes_{name}"] = sum(f.stat().st_size for f in d.iterdir())
    shutil.rmtree(base, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, help="where to write (a disk, not tmpfs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per figure")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dir, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
