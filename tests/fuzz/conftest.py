"""Fuzzing reuses the NodeCore harness (tests/node) and the end-to-end helpers (tests/e2e)."""

from __future__ import annotations

import sys
from pathlib import Path

for helpers in ("node", "e2e"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / helpers))
