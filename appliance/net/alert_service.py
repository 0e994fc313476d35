"""The alert service in the daemon: periodic rules every minute, and delivery of alerts to their channels.

Per-call rules run inside the pipeline (``AlertEngine`` is a pipeline observer); this service adds what
needs a timer: ``check_periodic`` once a minute, and a delivery loop that claims due deliveries on the
database thread (``appliance.alerts.deliveries``), hands them to the channels
(``appliance.net.alert_delivery``) and records each outcome on the database thread again, one row per
attempt in ``alert_deliveries`` (the log the web admin shows under each alert).

A delivery never waits on another: each claimed delivery is marked ``sending`` with a deadline before it
goes out, the claim job returns at once, and slow or dead receivers only hold their own Deferred. The
database jobs are a few rows each, so they cannot hold up the call pipeline that shares the database
thread. New alerts wake the loop at once; the loop also ticks every ``delivery.interval_seconds`` and
claims when a retry's backoff has run out, or at least once a minute for alerts written elsewhere (the
pipeline's ``unrated_call``); an idle tick costs no database job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.alerts import deliveries
from appliance.alerts.engine import AlertEngine
from appliance.net.alert_delivery import Channels, Sender, target_of

CHECK_INTERVAL = 60.0
CLAIM_LIMIT = 20  # deliveries per database job, so the job stays small
SEND_GRACE = 30.0  # seconds past a channel's own timeout before a "sending" entry is due again


def utc(clock: Any) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), tz=timezone.utc)


class AlertService(Service):
    log = Logger()

    def __init__(self, engine: AlertEngine, db: Any, sessions: Any, reactor: Any, *, clock: Any = None,
                 senders: Mapping[str, Sender] | None = None,
                 timeouts: Mapping[str, float] | None = None) -> None:
        """``reactor`` carries the network; ``clock`` (the reactor by default) the timers. ``senders``
        replaces the channels of the configuration (tests); ``db`` has ``run(fn, *args) -> Deferred``."""
        self.engine = engine
        self._db = db
        self._sessions = sessions
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._policy = engine.config.delivery
        self._channels: Channels | None = None
        if senders is None:
            self._channels = Channels(engine.config, reactor)
            senders, timeouts = self._channels.senders, self._channels.timeouts
        self.senders: dict[str, Sender] = dict(senders)
        self._targets = {name: target_of(sender) for name, sender in self.senders.items()}
        self._timeouts = dict(timeouts or {})
        self._check_loop = LoopingCall(self.check)
        self._check_loop.clock = self._clock
        self._deliver_loop = LoopingCall(self.tick)
        self._deliver_loop.clock = self._clock
        self._delivering = False
        self._again = False
        # What the last claim learned, so an idle tick costs no database job: when the next delivery
        # falls due, and when the table was last looked at (alerts raised elsewhere, such as the
        # pipeline's unrated_call, are picked up by a look at least once a minute).
        self._next_due: datetime | None = None
        self._looked_at: datetime | None = None
        self.in_flight = 0
        engine.add_listener(self._raised)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        if self._channels is not None:
            self._channels.start()
        # The first check waits a minute: the links have just started and a PBX may be replaying its buffer.
        self._check_loop.start(CHECK_INTERVAL, now=False)
        if self.senders:
            self._deliver_loop.start(self._policy.interval_seconds, now=True)

    def stopService(self) -> Any:  # noqa: N802 (Twisted API)
        for loop in (self._check_loop, self._deliver_loop):
            if loop.running:
                loop.stop()
        if self._channels is not None:
            self._channels.stop()
        return super().stopService()

    # ------------------------------------------------------------------ periodic rules

    def check(self) -> Deferred[Any]:
        job = self._db.run(self._check_job, utc(self._clock))
        job.addCallback(self._checked)
        job.addErrback(lambda failure: self.log.failure("periodic alert rules failed", failure))
        return job

    def _check_job(self, now: datetime) -> list[tuple[str, str, str]]:
        with self._sessions.begin() as session:
            alerts = self.engine.check_periodic(session, now)
            return [(a.rule, a.severity, a.subject) for a in alerts]

    def _checked(self, raised: list[tuple[str, str, str]]) -> None:
        for rule, severity, subject in raised:
            self.log.warn("alert {rule} ({severity}) about {subject}", rule=rule, severity=severity,
                          subject=subject)

    # ------------------------------------------------------------------ delivery

    def _raised(self, alerts: list[Any]) -> None:
        """Called by the engine in the database thread, before the commit: wake the loop from the reactor.

        The loop's claim job is queued on the same single database thread, so it runs after this commit.
        """
        if not self.senders:
            return
        call_from_thread = getattr(self._reactor, "callFromThread", None)
        if call_from_thread is not None:
            call_from_thread(self.wake)
        else:  # a test clock: still never inside the transaction that raised the alert
            self._clock.callLater(0, self.wake)

    def wake(self) -> None:
        if self.running:
            self.deliver()

    def tick(self) -> Deferred[None] | None:
        """The delivery loop: claim only when something is due or the last look is a minute old."""
        now = utc(self._clock)
        stale = self._looked_at is None or (now - self._looked_at).total_seconds() >= CHECK_INTERVAL
        if stale or (self._next_due is not None and self._next_due <= now):
            return self.deliver()
        return None

    def deliver(self) -> Deferred[None] | None:
        """Claim due deliveries and send them; a run already claiming makes this one follow it."""
        if self._delivering:
            self._again = True
            return None
        self._delivering = True
        self._again = False
        self._looked_at = now = utc(self._clock)
        job = self._db.run(self._claim_job, now)
        job.addCallback(self._dispatch)
        job.addErrback(lambda failure: self.log.failure("claiming alert deliveries failed", failure))
        job.addBoth(self._claimed)
        return job

    def _claim_job(self, now: datetime) -> deliveries.Claimed:
        window = max(self._timeouts.values(), default=30.0) + SEND_GRACE
        with self._sessions.begin() as session:
            claimed = deliveries.claim_due(session, now, policy=self._policy, channels=self.senders,
                                           window=window, route=self.engine.config.channels_for,
                                           site=self.engine.site, describe=self.engine.describe(),
                                           limit=CLAIM_LIMIT, targets=self._targets)
        return claimed

    def _dispatch(self, claimed: deliveries.Claimed) -> None:
        self._next_due = claimed.next_due
        for job in claimed.jobs:
            self._send(job)
        if claimed.next_due is not None and claimed.next_due <= utc(self._clock):
            self._again = True  # more was due than one job takes

    def _claimed(self, _: Any) -> None:
        self._delivering = False
        if self._again and self.running:
            self._clock.callLater(0, self.deliver)

    def _send(self, job: deliveries.DeliveryJob) -> None:
        self.in_flight += 1
        sending = maybeDeferred(self.senders[job.channel].send, job.payload)
        sending.addCallbacks(lambda _: None, _reason)
        sending.addCallback(lambda error: self._db.run(self._record_job, job, error, utc(self._clock)))
        sending.addCallback(self._recorded, job)
        sending.addErrback(lambda failure: self.log.failure(
            "recording the delivery of alert {alert} to {channel} failed", failure, alert=job.alert_id,
            channel=job.channel))
        sending.addBoth(self._sent)

    def _record_job(self, job: deliveries.DeliveryJob, error: str | None,
                    now: datetime) -> deliveries.Recorded | None:
        with self._sessions.begin() as session:
            return deliveries.record_outcome(session, job.delivery_id, error, now, policy=self._policy)

    def _recorded(self, entry: deliveries.Recorded | None, job: deliveries.DeliveryJob) -> None:
        if entry is None:
            return
        status = entry.outcome
        if status == "retry" and entry.next_attempt_at is not None:
            retry_at = entry.next_attempt_at
            self._next_due = retry_at if self._next_due is None else min(self._next_due, retry_at)
        if status == "sent":
            self.log.info("alert {alert} delivered to {channel} (attempt {attempt})", alert=job.alert_id,
                          channel=job.channel, attempt=job.attempt)
        elif status == "retry":
            self.log.warn("alert {alert} to {channel}: attempt {attempt} failed ({error}); "
                          "next attempt at {at}", alert=job.alert_id, channel=job.channel,
                          attempt=job.attempt, error=entry.error,
                          at=entry.next_attempt_at.isoformat() if entry.next_attempt_at else "")
        elif status == "failed":
            self.log.error("alert {alert} to {channel}: giving up after {attempt} attempts ({error})",
                           alert=job.alert_id, channel=job.channel, attempt=job.attempt,
                           error=entry.error)

    def _sent(self, _: Any) -> None:
        self.in_flight -= 1


def _reason(failure: Failure) -> str:
    """A failed send in a line for the delivery log: the exception's type and message."""
    message = failure.getErrorMessage()
    return f"{failure.type.__name__}: {message}" if message else failure.type.__name__
