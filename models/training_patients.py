"""Which patients a registered model was trained on, without storing who they are.

The record ships with the model (an artifact of the registered pyfunc) so the promotion gate can
compare a challenger with the champion only on patients the champion never saw. Patient ids are
kept as salted, truncated SHA-256 digests: `sha256(salt + ":" + patient_id)`, first 16 hex digits
(64 bits). The salt is random per registration and stored beside the digests, so:

- membership of a *known* id can be tested (that is the purpose), but the digests cannot be turned
  back into ids, and two models' records cannot be joined to each other (different salts);
- two different ids share a digest with probability about n / 2**64 per lookup (n = training
  patients): 5e-14 at a million patients; such a false match only *excludes* a patient from the
  comparison, it never lets an overlapping one in.

Ids are opaque strings (what the cohort's `patient_id` holds); the record also carries the DVC hash
of the training cohort, which says "same cohort" without looking at any id.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FILE_NAME = "training_patients.json"
SCHEME = "sha256(salt + ':' + patient_id), first 16 hex digits"
DIGITS = 16


def _digest(salt: str, patient_id: str) -> str:
    return hashlib.sha256(f"{salt}:{patient_id}".encode()).hexdigest()[:DIGITS]


@dataclass(frozen=True)
class TrainingPatients:
    salt: str
    digests: frozenset[str] = field(repr=False)
    cohort_hash: str = ""

    @classmethod
    def build(cls, patient_ids: Iterable[object], cohort_hash: str = "", salt: str | None = None) -> TrainingPatients:
        salt = salt or secrets.token_hex(16)
        return cls(salt, frozenset(_digest(salt, str(pid)) for pid in patient_ids), str(cohort_hash or ""))

    @property
    def n_patients(self) -> int:
        return len(self.digests)

    def contains(self, patient_ids: Iterable[object]) -> np.ndarray:
        """True for each id the model was trained on (ids compared as strings)."""
        return np.array([_digest(self.salt, str(pid)) in self.digests for pid in patient_ids], dtype=bool)

    def to_dict(self) -> dict:
        return {"scheme": SCHEME, "salt": self.salt, "cohort_dvc_hash": self.cohort_hash,
                "n_patients": self.n_patients, "digests": sorted(self.digests)}

    def write(self, folder: Path) -> Path:
        path = Path(folder) / FILE_NAME
        path.write_text(json.dumps(self.to_dict(), indent=0) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> TrainingPatients:
        data = json.loads(Path(path).read_text())
        if data.get("scheme") != SCHEME:
            raise ValueError(f"{path}: unknown training-patient scheme {data.get('scheme')!r}")
        return cls(str(data["salt"]), frozenset(data["digests"]), str(data.get("cohort_dvc_hash", "")))
