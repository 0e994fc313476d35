"""The ``reports:`` section: where the delivery schedules live, how reports are mailed, and the trunk count
for Erlang B. Without ``smtp`` no scheduled report is sent (the web admin still shows reports)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.reports.mail import SmtpSettings


@dataclass(frozen=True, kw_only=True)
class ReportsConfig:
    schedule_file: str = "/var/lib/appliance/report-schedules.json"
    trunk_count: int = 0
    smtp: SmtpSettings | None = None

    def __post_init__(self) -> None:
        if self.trunk_count < 0:
            raise ValueError("trunk_count must be 0 (unknown) or the number of outside lines")
