"""What every report returns: a title, typed columns, rows and a totals row.

One shape for all reports lets one set of renderers (CSV, Excel, PDF) and one web template show any of
them. Column kinds tell renderers how to format a cell: money stays ``Decimal`` end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from appliance.reports.period import Period

Kind = Literal["text", "int", "money", "seconds", "float", "percent"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Column:
    label: str
    kind: Kind = "text"


@dataclass(frozen=True, kw_only=True)
class Chart:
    """A bar chart of one numeric column against the label column (both by index)."""

    label_column: int = 0
    value_column: int = 1
    title: str = ""


@dataclass(frozen=True, kw_only=True)
class Report:
    """A finished report. ``key`` is stable (file names, schedule definitions); ``notes`` are short lines
    of figures shown under the title (e.g. the busy hour and the Erlang B estimate)."""

    key: str
    title: str
    period: Period
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    totals: tuple[Any, ...] | None = None
    notes: tuple[str, ...] = ()
    chart: Chart | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, label: str) -> list[Any]:
        """The values of one column by label (for tests and web templates)."""
        index = [c.label for c in self.columns].index(label)
        return [row[index] for row in self.rows]
