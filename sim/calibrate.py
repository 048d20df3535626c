"""Calibration of the simulator's CPU model against this machine.

The simulator charges each Ed25519 signature and verification as virtual CPU time
(``sim.backend.CryptoCost``). These helpers measure what one operation really costs here, with
the same library the nodes use (``ledger.keys`` over PyNaCl), so ``huzhu simulate
--calibrate-crypto`` and the sweeps charge what this machine would spend. The measured costs
are written into the trace's start line, so a replay charges exactly the same amounts even on
another machine.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ledger import keys

CALIBRATION_OPERATIONS = 400  # per round; about 40 ms of verification on a current core
CALIBRATION_ROUNDS = 3  # the fastest round is kept: other load only slows a round down
MESSAGE_SIZE_BYTES = 200  # about a consensus vote's signing message


@dataclass(frozen=True, slots=True)
class CryptoCalibration:
    sign_us: int
    verify_us: int

    @property
    def verifies_per_s(self) -> int:
        return round(1_000_000 / max(1, self.verify_us))

    @property
    def signs_per_s(self) -> int:
        return round(1_000_000 / max(1, self.sign_us))

    def to_plain(self) -> dict[str, int]:
        return {"sign_us": self.sign_us, "verify_us": self.verify_us,
                "signs_per_s": self.signs_per_s, "verifies_per_s": self.verifies_per_s}


def _best_per_op_us(operation, count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for index in range(count):
            operation(index)
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1_000_000


def measure_ed25519(operations: int = CALIBRATION_OPERATIONS,
                    rounds: int = CALIBRATION_ROUNDS) -> CryptoCalibration:
    """This machine's single-core cost of one Ed25519 signature and one verification."""
    key = keys.KeyPair.from_seed(hashlib.sha256(b"huzhu/sim/calibrate").digest())
    messages = [hashlib.sha256(i.to_bytes(4, "big")).digest() * (MESSAGE_SIZE_BYTES // 32)
                for i in range(operations)]
    signatures = [key.sign_message(message) for message in messages]
    public_key = key.public_key
    sign_us = _best_per_op_us(lambda i: key.sign_message(messages[i]), operations, rounds)

    def verify(i: int) -> None:
        if not keys.verify_message(public_key, messages[i], signatures[i]):
            raise AssertionError("calibration signature did not verify")
    verify_us = _best_per_op_us(verify, operations, rounds)
    return CryptoCalibration(sign_us=max(1, round(sign_us)), verify_us=max(1, round(verify_us)))
