"""One exception family for problems with the user's input data."""

from __future__ import annotations

from crs_settings import InputProblem


class CohortError(InputProblem):
    """Input data cannot be used as given. The message says what, where, and how to fix it."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        self.file, self.row, self.column = file, row, column
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
