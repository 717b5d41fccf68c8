"""Where data comes from: canonical schema, analyte registry, readers, the simulator."""

from cohorts.errors import CohortError

__all__ = ["CohortError"]
