"""Cost, traffic and billing reports over the calls and postings tables (issue 7, item 3).

No Twisted and no clock here: every function takes a SQLAlchemy ``Session`` and a ``Period`` (local days
in the site's zone) and returns a ``Report`` that the renderers in ``render`` and ``pdf`` turn into CSV,
Excel or PDF bytes. See docs/reports.md.
"""

from appliance.reports.billing import business_day, frontdesk_daily
from appliance.reports.costs import (
    call_totals, calls_by_hour, cost_by_call_class, cost_by_country, cost_by_department, cost_by_extension,
    cost_by_trunk,
)
from appliance.reports.model import Chart, Column, Report
from appliance.reports.period import Period
from appliance.reports.traffic import (
    Utilisation, concurrency_steps, erlang_b, measure, peak_occupancy, trunk_utilisation, trunks_needed,
)

__all__ = [
    "Chart", "Column", "Period", "Report", "Utilisation", "business_day", "call_totals", "calls_by_hour",
    "concurrency_steps", "cost_by_call_class", "cost_by_country", "cost_by_department", "cost_by_extension",
    "cost_by_trunk", "erlang_b", "frontdesk_daily", "measure", "peak_occupancy", "trunk_utilisation",
    "trunks_needed",
]
