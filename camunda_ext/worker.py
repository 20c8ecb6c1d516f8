"""The polling :class:`Worker` and the handler registry it shares with the CDC worker."""

from __future__ import annotations

import abc
import logging
import signal
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from camunda_ext._protocol.clock import Clock, Jitter, SystemClock, system_jitter
from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.manager import Manager, SourceAndFlow
from camunda_ext._protocol.poller import Backlog, Poller
from camunda_ext.builders import DEFAULT_RETRIES
from camunda_ext.client import Client
from camunda_ext.errors import ConfigurationError
from camunda_ext.metrics import GuardedMetrics, Metrics, NullMetrics
from camunda_ext.models import FetchTopic
from camunda_ext.settings import Handler, RetryPolicy, Subscription, WorkerSettings

__all__ = ["BaseWorker", "Worker"]

logger = logging.getLogger(__name__)

#: Lock duration of a topic unless registered otherwise, in milliseconds.
DEFAULT_LOCK_DURATION = 30_000

#: Requests that may run beside the handlers' own: the poller's and the leaser's.
_SPARE_CONNECTIONS = 2


class BaseWorker(abc.ABC):
    """Handler registration and lifecycle shared by :class:`Worker` and ``SequinWorker``.

    Thread-safe: ``stop()`` may be called from any thread, including a handler.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_tasks: int = 10,
        poll_interval: float = 0.5,
        async_response_timeout: Optional[float] = 30.0,
        use_priority: Optional[bool] = None,
        sorting: Optional[Sequence[Tuple[str, str]]] = None,
        retries: int = DEFAULT_RETRIES,
        retry_timeout: int = 0,
        retry_backoff_factor: float = 1.0,
        max_retry_timeout: int = 3_600_000,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        report_attempts: int = 8,
        fetch_concurrency: int = 2,
        extend_locks: bool = True,
        max_lock_duration: Optional[int] = 3_600_000,
        metrics: Optional[Metrics] = None,
        clock: Optional[Clock] = None,
        jitter: Optional[Jitter] = None,
    ) -> None:
        self.client = client
        self.settings = WorkerSettings(
            max_tasks=max_tasks,
            poll_interval=poll_interval,
            async_response_timeout=async_response_timeout,
            use_priority=use_priority,
            sorting=sorting,
            retry_policy=RetryPolicy(
                retries=retries,
                retry_timeout=retry_timeout,
                backoff_factor=retry_backoff_factor,
                max_retry_timeout=max_retry_timeout,
            ),
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            report_attempts=report_attempts,
            fetch_concurrency=fetch_concurrency,
            extend_locks=extend_locks,
            max_lock_duration=max_lock_duration,
        )
        if client.pool_maxsize < max_tasks + _SPARE_CONNECTIONS:
            logger.warning(
                "Client pool_maxsize=%d is below max_tasks + %d: connections will be opened and "
                "discarded under load; raise pool_maxsize",
                client.pool_maxsize,
                _SPARE_CONNECTIONS,
            )
        self.metrics: Metrics = metrics if metrics is not None else NullMetrics()
        self._manager = Manager(
            client,
            self.settings,
            self.metrics if metrics is None else GuardedMetrics(metrics),
            clock if clock is not None else SystemClock(),
            jitter if jitter is not None else system_jitter(),
        )
        self._subscriptions: Dict[str, Subscription] = {}

    # ------------------------------------------------------------------ registration

    def register_handler(
        self,
        topic: str,
        handler: Handler,
        *,
        lock_duration: int = DEFAULT_LOCK_DURATION,
        variables: Optional[Sequence[str]] = None,
        local_variables: bool = False,
        business_key: Optional[str] = None,
        process_definition_id: Optional[str] = None,
        process_definition_id_in: Optional[Sequence[str]] = None,
        process_definition_key: Optional[str] = None,
        process_definition_key_in: Optional[Sequence[str]] = None,
        process_definition_version_tag: Optional[str] = None,
        tenant_id_in: Optional[Sequence[str]] = None,
        without_tenant_id: bool = False,
        process_variables: Optional[Mapping[str, Any]] = None,
        deserialize_values: Optional[bool] = None,
        include_extension_properties: bool = False,
    ) -> None:
        """Run ``handler(task, complete, fail)`` for tasks of ``topic``.

        Args:
            topic: The topic name.
            handler: Called on a handler thread with the locked
                :class:`~camunda_ext.models.ExternalTask`, a ``complete()``
                builder factory and a ``fail(...)`` builder factory. Raising
                :class:`~camunda_ext.errors.BpmnError` reports a BPMN error; any
                other exception reports a failure with its traceback; returning
                without an outcome reports a failure too.
            lock_duration: Lock duration in milliseconds.
            variables: Variable names to fetch; None fetches all, ``[]`` none.
            local_variables: Fetch only variables local to the task's execution.
            business_key: Only tasks of instances with this business key.
            process_definition_id: Only tasks of this definition id.
            process_definition_id_in: Only tasks of these definition ids.
            process_definition_key: Only tasks of this definition key.
            process_definition_key_in: Only tasks of these definition keys.
            process_definition_version_tag: Only tasks of this version tag.
            tenant_id_in: Only tasks of these tenants.
            without_tenant_id: Only tasks without a tenant.
            process_variables: Only tasks whose instance has these variable values.
            deserialize_values: Ask the engine to deserialize Object values.
            include_extension_properties: Fetch the activity's extension properties.

        Raises:
            ConfigurationError: Bad arguments, a topic registered twice, or the
                worker already started.
        """
        if self._manager.running:
            raise ConfigurationError("register handlers before start()")
        if not topic or not isinstance(topic, str):
            raise ConfigurationError("topic must be a non-empty string")
        if topic in self._subscriptions:
            raise ConfigurationError("topic %r already has a handler" % topic)
        if not callable(handler):
            raise ConfigurationError("handler for %r is not callable" % topic)
        if isinstance(variables, str):
            raise ConfigurationError("variables must be a list of names, not a string")
        if not isinstance(lock_duration, int) or lock_duration <= 0:
            raise ConfigurationError("lock_duration must be a positive int of milliseconds")
        fetch = FetchTopic(
            topic_name=topic,
            lock_duration=lock_duration,
            variables=None if variables is None else list(variables),
            local_variables=local_variables or None,
            business_key=business_key,
            process_definition_id=process_definition_id,
            process_definition_id_in=_listed(process_definition_id_in),
            process_definition_key=process_definition_key,
            process_definition_key_in=_listed(process_definition_key_in),
            process_definition_version_tag=process_definition_version_tag,
            tenant_id_in=_listed(tenant_id_in),
            without_tenant_id=without_tenant_id or None,
            process_variables=None if process_variables is None else dict(process_variables),
            deserialize_values=deserialize_values,
            include_extension_properties=include_extension_properties or None,
        )
        self._subscriptions[topic] = Subscription(fetch=fetch, handler=handler)

    def handler(self, topic: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`register_handler`; returns the function unchanged."""

        def register(function: Handler) -> Handler:
            self.register_handler(topic, function, **options)
            return function

        return register

    @property
    def topics(self) -> List[str]:
        """The registered topics."""
        return list(self._subscriptions)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker's threads and return at once.

        Raises:
            ConfigurationError: No handler registered.
            RuntimeError: Already started.
        """
        if not self._subscriptions:
            raise ConfigurationError("register at least one handler before start()")
        self._manager.open(self._build_sources)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop gracefully; safe to call more than once and from any thread.

        Intake stops at once. Running handlers get ``timeout`` seconds to finish
        (None: as long as they need) while their locks are kept alive; what still
        runs then is unlocked, as are tasks fetched but not started.
        """
        self._manager.stop(timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the worker has stopped.

        Returns:
            True if it has stopped.

        Raises:
            CamundaError: The fatal error that stopped the worker (e.g. wrong
                credentials or base URL).
        """
        return self._manager.join(timeout)

    def run(self) -> None:
        """Start and block until stopped; SIGINT and SIGTERM stop gracefully.

        Signal handlers are installed only when called from the main thread, and
        the previous ones are restored as soon as a signal arrives (a second
        Ctrl-C acts as it did before).

        Raises:
            CamundaError: The fatal error that stopped the worker.
        """
        self.start()
        if threading.current_thread() is not threading.main_thread():
            self.join()
            return
        previous: Dict[int, Any] = {}

        def on_signal(signum: int, frame: Any) -> None:
            logger.info("Received signal %d: stopping", signum)
            _restore(previous)
            self._manager.stop_in_background()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
        try:
            self.join()
        finally:
            _restore(previous)

    def __enter__(self) -> BaseWorker:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @abc.abstractmethod
    def _build_sources(self, manager: Manager, dispatcher: Dispatcher) -> List[SourceAndFlow]:
        """The ``(source, flow_controller)`` pairs that bring this worker its tasks."""

    def _poller(
        self, manager: Manager, dispatcher: Dispatcher, flow: FlowController, **options: Any
    ) -> Poller:
        """A poller of the registered topics; ``options`` are Poller's keyword options."""
        return Poller(
            manager.client,
            dict(self._subscriptions),
            flow,
            dispatcher,
            manager.reporter,
            self.settings,
            manager.metrics,
            manager.clock,
            manager.jitter,
            manager.stop_event,
            manager.fatal,
            **options,
        )

    def _backlog_pollers(
        self, manager: Manager, dispatcher: Dispatcher, flow: FlowController, backlog: Backlog
    ) -> List[Poller]:
        """The ``fetch_concurrency - 1`` extra pollers that fetch only while ``backlog`` is set."""
        return [
            self._poller(
                manager,
                dispatcher,
                flow,
                async_response_timeout=None,
                name="camunda-ext-poller-%d" % number,
                backlog=backlog,
                on_backlog_only=True,
            )
            for number in range(2, self.settings.fetch_concurrency + 1)
        ]


class Worker(BaseWorker):
    """Runs handlers for tasks it long-polls with fetchAndLock.

    ::

        client = Client("http://localhost:8080/engine-rest", "classic-worker")
        worker = Worker(client, max_tasks=20, poll_interval=0.1)
        worker.register_handler("creditScoreChecker", handler, lock_duration=60000)
        worker.run()

    Args:
        client: The engine client (its session is closed when the worker stops).
        max_tasks: Handler threads, and the most tasks held at once.
        poll_interval: Seconds to pause after an empty answer.
        async_response_timeout: Long-poll time in seconds (None: no long polling).
        use_priority: Fetch high-priority tasks first.
        sorting: ``(sort_by, sort_order)`` pairs, e.g. ``[("createTime", "asc")]``.
        retries: Retries reported on a task's first failure; later failures count down.
        retry_timeout: Milliseconds before a failed task is fetched again.
        retry_backoff_factor: Multiplies the retry timeout per further failure.
        max_retry_timeout: Largest retry timeout in milliseconds.
        backoff_base: First pause in seconds after an engine or network error.
        backoff_cap: Longest such pause in seconds.
        report_attempts: Attempts to deliver an outcome before unlocking the task.
        fetch_concurrency: Fetches that may run at once while the engine has a
            backlog (fetches come back full); the first long-polls, the others
            send nothing while there is no backlog.
        extend_locks: Extend the locks of long-running handlers.
        max_lock_duration: Milliseconds after which a lock is no longer extended.
        metrics: A :class:`~camunda_ext.metrics.Metrics` hook.
        clock: Monotonic clock (for tests).
        jitter: Random source of back-off jitter (for tests).
    """

    def _build_sources(self, manager: Manager, dispatcher: Dispatcher) -> List[SourceAndFlow]:
        flow = FlowController(self.settings.max_tasks)
        # Set while fetches come back full: then the extra pollers fetch too, so
        # that fetching overlaps with handling; idle, they send nothing.
        backlog = Backlog()
        long_poller = self._poller(
            manager,
            dispatcher,
            flow,
            async_response_timeout=self.settings.async_response_timeout,
            backlog=backlog,
        )
        pollers = [long_poller, *self._backlog_pollers(manager, dispatcher, flow, backlog)]
        return [(poller, flow) for poller in pollers]


def _listed(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    return None if values is None else list(values)


def _restore(previous: Dict[int, Any]) -> None:
    for signum, handler in list(previous.items()):
        signal.signal(signum, handler)
    previous.clear()
