"""The change-data-capture worker: learns of external tasks from Sequin instead of polling."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

from camunda_ext._protocol.dispatch import Dispatcher
from camunda_ext._protocol.flow_control import FlowController
from camunda_ext._protocol.manager import Manager, SourceAndFlow
from camunda_ext._protocol.poller import Backlog
from camunda_ext._protocol.puller import LOCK, WAKE, Puller
from camunda_ext._protocol.task_loader import TaskLoader
from camunda_ext.client import Client
from camunda_ext.errors import ConfigurationError
from camunda_ext.sequin import MAX_BATCH_SIZE, SequinClient
from camunda_ext.worker import BaseWorker

__all__ = ["SequinWorker"]


class SequinWorker(BaseWorker):
    """Runs handlers for tasks announced by Sequin's change stream of ``act_ru_ext_task``.

    Same handler contract, executor, back-pressure, outcome retries and lock
    extension as :class:`~camunda_ext.Worker`. Two modes:

    - ``"lock"``: each new or newly available task of a registered topic is
      locked by id, read back (the engine is the authority for retries, business
      key, ...), given the variables fetchAndLock would give it (scoped to its
      execution, honouring ``variables``), run, and its outcome reported; only
      then is the event acked.
    - ``"wake"``: an event only wakes a fetchAndLock (no long poll) of its topic
      for the free slots; the handler gets the fetched task; the event is acked
      once that fetch was made. One fetch serves a whole batch of events.

    In ``wake`` mode, while fetches come back full (a backlog), the
    ``fetch_concurrency - 1`` extra pollers of :class:`~camunda_ext.Worker`
    fetch every topic as slots free, so that a freed slot does not wait for the
    next event; they send nothing once an answer comes back short. Meanwhile
    no event is received: the events wait in Sequin, and once the backlog is
    gone they are served in batches of up to ``max_batch_size``.

    In both modes a low-rate fetchAndLock sweep (every ``sweep_interval``
    seconds, and at start) finds tasks that become available with no change
    event: a retry timeout that elapsed, a lock that expired after a crash.

    Delivery is at least once: an event not acked within Sequin's visibility
    timeout (30 s) comes again; a task already running here is not run twice.
    While Sequin is down the worker keeps backing off and the sweep keeps
    tasks moving, at its lower rate.

    Args:
        client: The engine client; its session also carries the Sequin requests
            (each host gets only its own credentials).
        sequin_url: Sequin's root, e.g. ``http://localhost:7376``.
        consumer: The Sequin pull consumer (sink) name or id.
        token: Sequin API token; ``SEQUIN_API_TOKEN`` from the environment when
            None. There is no built-in token: without one, ConfigurationError.
        mode: ``"lock"`` or ``"wake"``.
        wait_for: Long-poll seconds of a Sequin receive (0.5 to 300).
        max_batch_size: Most events per receive (1 to 1000). By default
            ``max_tasks`` in ``lock`` mode, where each event may become a
            handler run, and 1000 in ``wake`` mode, where events hold no slot.
        sweep_interval: Seconds between fetchAndLock sweeps (at most 30 by default).
        sequin_verify: TLS verification of Sequin: True, False or a CA bundle path.
        **options: The options of :class:`~camunda_ext.Worker` (``max_tasks``,
            ``retries``, ...). ``async_response_timeout`` does not apply: sweeps
            never long-poll.
    """

    def __init__(
        self,
        client: Client,
        sequin_url: str,
        consumer: str,
        *,
        token: Optional[str] = None,
        mode: str = LOCK,
        wait_for: float = 20.0,
        max_batch_size: Optional[int] = None,
        sweep_interval: float = 30.0,
        sequin_verify: Union[bool, str] = True,
        **options: Any,
    ) -> None:
        if mode not in (LOCK, WAKE):
            raise ConfigurationError("mode must be 'lock' or 'wake', got %r" % (mode,))
        if not 0.5 <= wait_for <= 300:
            raise ConfigurationError("wait_for must be between 0.5 and 300 seconds")
        if sweep_interval <= 0:
            raise ConfigurationError("sweep_interval must be positive")
        super().__init__(client, **options)
        self.mode = mode
        self.wait_for = wait_for
        self.max_batch_size = max_batch_size or (MAX_BATCH_SIZE if mode == WAKE else self.settings.max_tasks)
        self.sweep_interval = sweep_interval
        self.sequin = SequinClient(
            sequin_url, consumer, token=token, session=client.session, verify=sequin_verify
        )

    def _build_sources(self, manager: Manager, dispatcher: Dispatcher) -> List[SourceAndFlow]:
        # One budget for the events and the sweep: together they never hold more
        # tasks than there are handler threads.
        flow = FlowController(self.settings.max_tasks)
        subscriptions = dict(self._subscriptions)
        # The sweep keeps its pace even when it finds tasks: the events carry the load.
        sweep = self._poller(
            manager,
            dispatcher,
            flow,
            async_response_timeout=None,
            name="camunda-ext-sweep",
            every=self.sweep_interval,
        )
        # Set while fetches come back full: then the extra pollers fetch as slots
        # free, without waiting for the next event (as Worker's do), and the
        # puller leaves the events in Sequin.
        backlog = Backlog()
        wake_poller = self._poller(
            manager, dispatcher, flow, async_response_timeout=None, name="camunda-ext-wake", backlog=backlog
        )
        extra_pollers = self._backlog_pollers(manager, dispatcher, flow, backlog) if self.mode == WAKE else []
        puller = Puller(
            self.sequin,
            subscriptions,
            flow,
            dispatcher,
            TaskLoader(manager.client, manager.leaser, manager.clock),
            wake_poller,
            self.settings,
            manager.jitter,
            manager.stop_event,
            manager.fatal,
            mode=self.mode,
            wait_for=self.wait_for,
            max_batch_size=self.max_batch_size,
            sleep=manager.stop_event.wait,
            # Without extra pollers nothing would fetch for the events left in Sequin.
            backlog=backlog if extra_pollers else None,
        )
        sources: List[Tuple[Any, FlowController]] = [(puller, flow), (sweep, flow)]
        sources.extend((poller, flow) for poller in extra_pollers)
        return sources
