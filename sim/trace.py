"""The run's JSONL trace and its SHA-256.

One JSON object per line, keys sorted, no spaces, for every delivered or dropped message and
every commit, fault and checker event, in the order they happen. Only virtual time appears
(``t_us``); wall-clock measurements stay out so the same seed gives byte-identical bytes and
hence the same ``trace_sha256``. Lines are hashed as they are written; they are kept on disk
only when a file is given, and never in memory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

DIGEST_PREFIX_CHARS = 16  # hex characters of a message digest shown in the trace


class Trace:
    """Streams trace lines into a SHA-256 and, optionally, a file."""

    def __init__(self, path: str | Path | None = None, keep_lines: int = 0) -> None:
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = open(path, "wb") if path is not None else None  # noqa: SIM115
        self.lines = 0
        self.bytes = 0
        # tests may keep the last few parsed lines to inspect; the CLI keeps none
        self._keep_lines = keep_lines
        self.kept: list[dict[str, Any]] = []

    def record(self, t_us: int, kind: str, **fields: Any) -> None:
        fields["t_us"] = t_us
        fields["kind"] = kind
        self._emit(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n",
                   fields)

    def record_message(self, t_us: int, kind: str, source: int, target: int, size: int,
                       message_type: str, digest: str, view: int | None, height: int | None,
                       note: str, from_twin: int | None, to_twin: int | None) -> None:
        """The hot path: one message line, formatted by hand (the same JSON ``record`` would
        write, keys sorted). Strings here are identifiers and hex, which need no escaping."""
        parts = [f'{{"digest":"{digest}","from":{source}']
        if from_twin is not None:
            parts.append(f',"from_twin":{from_twin}')
        if height is not None:
            parts.append(f',"height":{height}')
        parts.append(f',"kind":"{kind}"')
        if note:
            parts.append(f',"note":"{note}"')
        parts.append(f',"size":{size},"t_us":{t_us},"to":{target}')
        if to_twin is not None:
            parts.append(f',"to_twin":{to_twin}')
        parts.append(f',"type":"{message_type}"')
        if view is not None:
            parts.append(f',"view":{view}')
        parts.append("}\n")
        self._emit("".join(parts).encode(), None)

    def _emit(self, line: bytes, fields: dict[str, Any] | None) -> None:
        """Hash, count and write one line; keep its fields (parsed back from the line when
        not given) if the last lines are kept."""
        self._hash.update(line)
        self.lines += 1
        self.bytes += len(line)
        if self._file is not None:
            self._file.write(line)
        if self._keep_lines:
            self.kept.append(fields if fields is not None else json.loads(line))
            if len(self.kept) > self._keep_lines:
                del self.kept[: len(self.kept) - self._keep_lines]

    def sha256_hex(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """Parse a trace file (for tests and offline analysis)."""
    with open(path, "rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]
