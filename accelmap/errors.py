"""The one exception type for user mistakes.

Every bad input (a missing file, a YAML syntax error, a wrong field) is raised as
:class:`AccelmapError` naming the file, the field and what was expected, so the CLI can
print one line and exit with code 2 instead of a traceback.
"""

from __future__ import annotations


class AccelmapError(Exception):
    """A user error: bad input file, unknown name, impossible request."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.detail}" if prefix else self.detail

    def within(self, file: str | None = None, field: str | None = None) -> "AccelmapError":
        """Return a copy that also names the file (and an outer field path)."""
        new_field = self.field
        if field:
            new_field = f"{field}.{self.field}" if self.field else field
        return AccelmapError(self.detail, file=self.file or file, field=new_field)
