"""Abuse and silence alerts (domain.md, "Alerts that hotels ask for"); pure: no Twisted, no clock.

- ``config``: the ``alerts:`` section (rules, business hours, channels, retries);
- ``rules``: per-call rules, run as each call is stored; ``silence``: periodic rules;
- ``engine``: ``AlertEngine``, the pipeline observer that applies cool-downs and stores alerts;
- ``deliveries``: the per-channel delivery log kept in ``Alert.details`` and its database jobs.

The network side (e-mail, webhooks, syslog, timers) lives in ``appliance.net.alert_delivery`` and
``appliance.net.alert_service``.
"""

from appliance.alerts.config import AlertsConfig
from appliance.alerts.engine import AlertEngine

__all__ = ["AlertEngine", "AlertsConfig"]
