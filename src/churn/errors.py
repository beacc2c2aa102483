"""The one error type for problems a user can cause (bad input, bad config, missing model)."""

from __future__ import annotations

from dataclasses import dataclass, field


class ChurnError(Exception):
    """A user-facing error: the CLI prints its message without a traceback and exits non-zero."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating input: where it is and what is wrong."""

    table: str
    message: str
    file: str | None = None
    column: str | None = None
    count: int | None = None
    examples: list[str] = field(default_factory=list)

    def render(self) -> str:
        """One readable line: file, column, what is wrong, how often, example rows."""
        where = self.file or self.table
        col = f", column '{self.column}'" if self.column else ""
        n = f" ({self.count:,} rows)" if self.count is not None else ""
        ex = f"; e.g. {'; '.join(self.examples)}" if self.examples else ""
        return f"{where}{col}: {self.message}{n}{ex}"


class DataValidationError(ChurnError):
    """Input data broke the data contract; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p.render()}" for p in problems)
        super().__init__(f"input data failed validation ({len(problems)} problem(s)):\n{lines}")
