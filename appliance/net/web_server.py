"""Serve a WSGI application (the web admin) with Twisted: ``WSGIResource`` on a thread pool behind a ``Site``.

Flask views block (database, password hashing), so they run on the pool's threads, never on the reactor
thread. The pool starts and stops with the service: ``make_web_service`` returns a
``StreamServerEndpointService`` that ``appliance web`` starts directly (no twistd) and that a parent
service could adopt as well. Static files go through Flask too: a handful of small assets, cached by the
browser, do not need a separate resource.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

DEFAULT_THREADS = 8
# Twisted's default of 60 s keeps idle browser connections (and their buffers) around for long; a LAN admin
# screen does not need that.
REQUEST_TIMEOUT = 30


class WebService(StreamServerEndpointService):
    """Listen on an endpoint with a ``Site`` whose WSGI resource runs on ``threadpool``.

    Starting the service starts the pool; stopping it stops listening, then joins the pool's threads.
    """

    def __init__(self, endpoint: Any, site: Site, threadpool: ThreadPool) -> None:
        """``endpoint`` provides ``IStreamServerEndpoint``."""
        super().__init__(endpoint, site)
        self.threadpool = threadpool
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
        stopped = super().stopService()

        def stop_pool(result: Any) -> Any:
            if self.threadpool.started:
                self.threadpool.stop()
            return result

        if stopped is None:
            stop_pool(None)
            return None
        return stopped.addBoth(stop_pool)


def make_site(app: Any, reactor: Any, threadpool: ThreadPool) -> Site:
    """A ``Site`` serving ``app`` at its root; ``reactor`` also drives the HTTP timeouts."""
    resource = WSGIResource(reactor, threadpool, app)
    return Site(resource, timeout=REQUEST_TIMEOUT, reactor=reactor)


def make_web_service(app: Any, host: str, port: int, reactor: Any, *, threads: int = DEFAULT_THREADS,
                     backlog: int = 50) -> WebService:
    """A service that serves the WSGI ``app`` on ``host:port`` (IPv4 or IPv6 address; port 0 picks one)."""
    threadpool = ThreadPool(minthreads=1, maxthreads=threads, name="webadmin")
    endpoint_class = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
    endpoint = endpoint_class(reactor, port, backlog=backlog, interface=host)
    return WebService(endpoint, make_site(app, reactor, threadpool), threadpool)
