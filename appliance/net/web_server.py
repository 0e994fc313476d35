"""Serve a WSGI application (the web admin) with Twisted: ``WSGIResource`` on a thread pool behind a ``Site``.

Flask views block (database, password hashing), so they run on the pool's threads, never on the reactor
thread. Streamed responses (the report exports) get backpressure: Twisted's WSGI ``write`` hands each chunk
to the reactor without waiting for the socket, so a browser that reads slowly, or stops reading, would let
the send buffer grow without bound. ``BackpressureWSGIResource`` registers a push producer on each request;
the transport pauses it when its buffer is full, and the pool thread waits before producing the next chunk
(for at most ``STALLED_CLIENT`` seconds, then the response is abandoned and the connection closed).

The pool starts and stops with the service: ``make_web_service`` returns a ``StreamServerEndpointService``
that ``appliance web`` starts directly (no twistd) and that a parent service could adopt as well. Static
files go through Flask too: a handful of small assets, cached by the browser, do not need a separate
resource.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.python.threadpool import ThreadPool
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.wsgi import WSGIResource, _WSGIResponse
from zope.interface import implementer

DEFAULT_THREADS = 8
# Twisted's default of 60 s keeps idle browser connections (and their buffers) around for long; a LAN admin
# screen does not need that.
REQUEST_TIMEOUT = 30
# A client that has not taken a byte for this long is gone in all but name: free the pool thread.
STALLED_CLIENT = 300.0


class StalledClient(Exception):
    """The client stopped reading a streamed response."""


@implementer(IPushProducer)
class _Throttle:
    """Registered on one request: the transport pauses it when its send buffer is full, resumes it when
    the buffer has drained. The WSGI thread waits on it between chunks."""

    def __init__(self, paused: bool) -> None:
        self._writable = threading.Event()
        self.stopped = False
        if not paused:
            self._writable.set()

    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        self.stopped = True
        self._writable.set()

    def wait(self, timeout: float) -> bool:
        return self._writable.wait(timeout)


class _ThrottledBody:
    """The application's response body, yielded chunk by chunk only as fast as the client takes it."""

    def __init__(self, body: Iterable[bytes], throttle: _Throttle, reactor: Any, done: Callable[[], None],
                 stalled_after: float) -> None:
        self._body = body
        self._chunks = iter(body)
        self._throttle = throttle
        self._reactor = reactor
        self._done = done
        self._stalled_after = stalled_after

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        # Called by the WSGI thread after the previous chunk went to the reactor: wait for room first.
        if not self._throttle.wait(self._stalled_after):
            raise StalledClient(f"the client read nothing for {self._stalled_after:.0f} s")
        if self._throttle.stopped:
            raise StopIteration
        return next(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            # Queued before the response's finish (callFromThread keeps order): a request must not end
            # with its producer registered. Not blocking: at shutdown the reactor may be joining us.
            self._reactor.callFromThread(self._done)


class BackpressureWSGIResource(WSGIResource):
    """``WSGIResource`` whose responses wait for the client to read (see the module docstring)."""

    stalled_after = STALLED_CLIENT

    def __init__(self, reactor: Any, threadpool: ThreadPool, application: Any) -> None:
        super().__init__(reactor, threadpool, application)
        self._throttles: set[_Throttle] = set()  # of the responses being sent; reactor thread only

    def render(self, request: Any) -> Any:
        # Twisted's own render, with the application wrapped per request (_WSGIResponse is the class
        # WSGIResource.render uses; tests/webadmin/test_web_server.py checks the behaviour end to end).
        throttle = _Throttle(paused=bool(getattr(request.channel, "_waitingForTransport", False)))
        request.registerProducer(throttle, True)
        self._throttles.add(throttle)
        application: Callable[..., Any] = self._application

        def done() -> None:
            self._throttles.discard(throttle)
            if request.channel is not None:  # None once the client has gone (it may close right
                request.unregisterProducer()  # after the last byte of a response with a length)

        def throttled(environ: dict[str, Any], start_response: Any) -> _ThrottledBody:
            return _ThrottledBody(application(environ, start_response), throttle, self._reactor, done,
                                  self.stalled_after)

        _WSGIResponse(self._reactor, self._threadpool, throttled, request).start()
        return NOT_DONE_YET

    def stop_all(self) -> None:
        """End every response still being sent, so the pool's threads can be joined (at shutdown)."""
        for throttle in list(self._throttles):
            throttle.stopProducing()


class WebService(StreamServerEndpointService):
    """Listen on an endpoint with a ``Site`` whose WSGI resource runs on ``threadpool``.

    Starting the service starts the pool; stopping it stops listening, ends the responses still being
    streamed, then joins the pool's threads: at once when they are idle, else from a helper thread (a
    busy pool thread may be waiting for the reactor to take its last write), with a Deferred.
    """

    def __init__(self, endpoint: Any, site: Site, threadpool: ThreadPool, reactor: Any = None) -> None:
        """``endpoint`` provides ``IStreamServerEndpoint``."""
        super().__init__(endpoint, site)
        self.threadpool = threadpool
        self.reactor = reactor
        self.port: Any = None  # the IListeningPort once listening (tests read the port number from it)
        # Report a port that cannot be bound (in use, no permission) from startService itself, so the
        # command can say so and exit, instead of logging it and serving nothing.
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        if not self.threadpool.started:
            self.threadpool.start()
        try:
            super().privilegedStartService()
        except BaseException:
            self.threadpool.stop()  # nothing will ever run on it; its threads would keep the process alive
            raise
        if self._waitingForPort is not None:  # set by the call above; checked for the type checker
            self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        self.port = port
        return port

    def stopService(self) -> Any:
        resource = getattr(self.factory, "resource", None)
        if isinstance(resource, BackpressureWSGIResource):
            resource.stop_all()  # a thread waiting for a stalled client would block the pool's join
        stopped = super().stopService()

        def stop_pool(result: Any) -> Any:
            if not self.threadpool.started:
                return result
            if not self.threadpool.working or self.reactor is None:
                self.threadpool.stop()
                return result
            joined: Deferred[Any] = Deferred()

            def join() -> None:
                self.threadpool.stop()
                self.reactor.callFromThread(joined.callback, result)

            threading.Thread(target=join, name="webadmin-pool-stop", daemon=True).start()
            return joined

        if stopped is None:
            stop_pool(None)
            return None
        return stopped.addBoth(stop_pool)


def make_site(app: Any, reactor: Any, threadpool: ThreadPool) -> Site:
    """A ``Site`` serving ``app`` at its root; ``reactor`` also drives the HTTP timeouts."""
    resource = BackpressureWSGIResource(reactor, threadpool, app)
    return Site(resource, timeout=REQUEST_TIMEOUT, reactor=reactor)


def make_web_service(app: Any, host: str, port: int, reactor: Any, *, threads: int = DEFAULT_THREADS,
                     backlog: int = 50) -> WebService:
    """A service that serves the WSGI ``app`` on ``host:port`` (IPv4 or IPv6 address; port 0 picks one)."""
    threadpool = ThreadPool(minthreads=1, maxthreads=threads, name="webadmin")
    endpoint_class = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
    endpoint = endpoint_class(reactor, port, backlog=backlog, interface=host)
    return WebService(endpoint, make_site(app, reactor, threadpool), threadpool, reactor)
