"""The DICOM receiver: a Storage SCP that puts every object in intake and the ledger before
it answers success.

::

    network threads (one per association, at most ``max_associations``)
      C-STORE ── encoded bytes ── receive_bytes ──> intake (atomic, no clobber)
                                   │
                                   └─ receipt ──> ledger writer ──> ledger (one transaction
                                                  (group commit)     for all waiting stores)
      C-STORE response  <── status, sent only after the commit ─┘
                                                                    │ pending objects
                                                                    v
                                                  pipeline worker: a thread feeding the
                                                  executor's processes ──> ledger (decided)

The data set is never decoded, nor held in memory: while a receiver runs, pynetdicom writes
each C-STORE's data set to a file in the intake zone as its PDUs arrive (its documented
mechanism, ``_config.STORE_RECV_CHUNKED_DATASET``; see ``dicomhaven.collect._chunked``), exactly as the
peer sent it (compressed pixel data stays compressed), and the handler links that file into
intake and parses it through a read-only map (``received``): a 300 MB object costs the
receiver what a 2 KB one does. PDUs are bounded (``_MAX_PDU_BYTES``) for the same reason.
Handler contract (PS3.4 B.2.3, the Storage Service Class statuses):

=========  ===========================================================================
0x0000     success: the object is in intake and in the ledger (new or an identical copy)
0xB007     warning: stored, but its SOP Class differs from the one the command named
0x0111     failure: duplicate SOP Instance with other content (kept as rejected)
0xC000     failure: cannot understand (malformed data; kept in intake, rejected)
0xA700     failure: out of resources (disk, database); nothing acknowledged, retry later
=========  ===========================================================================

Nothing logged here comes from the data set: logs name AE titles, hosts, SOP Classes (from
the command), statuses and object keys only.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomhaven.catalogue import ObjectStatus, make_engine
from dicomhaven.collect._chunked import chunked_receive, received
from dicomhaven.errors import ConfigError
from dicomhaven.intake import CONFLICT_REASON, IntakeStore, Receipt
from dicomhaven.ledger import Ledger, Pending, ReceiptResult
from dicomhaven.pipeline import Decision, Outcome, ProcessExecutor, ProcessTask
from dicomhaven.settings import Settings, check_ae_title, split_allow_entry

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = [
    "AllowRule",
    "ReceiveSummary",
    "ReceiverConfig",
    "StoreStatus",
    "receiver_config",
    "run_receiver",
]

log = logging.getLogger(__name__)


class StoreStatus:
    """The C-STORE statuses this receiver answers with (PS3.4 Table B.2-1, PS3.7 C)."""

    SUCCESS = 0x0000
    SOP_CLASS_MISMATCH = 0xB007  # warning: Data Set does not match SOP Class (stored)
    DUPLICATE_CONFLICT = 0x0111  # failure: Duplicate SOP Instance
    CANNOT_UNDERSTAND = 0xC000  # failure: Error: Cannot understand
    OUT_OF_RESOURCES = 0xA700  # failure: Refused: Out of Resources


# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
_REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service user, calling AE not recognised
_REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # permanent, service user, called AE not recognised
_LEDGER_WAIT_SECONDS = 120.0  # a store waits this long for its commit, then answers A700
_ERROR_COMMENT_LENGTH = 64  # (0000,0902) Error Comment is LO
_LINGER_SECONDS = 0.003  # how long a commit may wait for stores in progress to join it
_MAX_PDU_BYTES = 1 << 20  # what we accept per P-DATA-TF PDU (see _storage_ae)


@dataclass(frozen=True)
class AllowRule:
    """One entry of the allow-list: a calling AE title, from any host or from one host."""

    ae_title: str
    host: str | None = None
    addresses: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entry: str, where: str) -> AllowRule:
        """``AE`` or ``AE@host``; ``where`` names the entry's origin for the error message."""
        try:
            title, host = split_allow_entry(entry)
        except ValueError as exc:
            raise ConfigError(f"{where}: '{entry}': {exc}") from None
        return cls(title, host)

    def resolved(self) -> AllowRule:
        """The rule with its host's addresses looked up (once, when the receiver starts)."""
        if self.host is None:
            return self
        try:
            infos = socket.getaddrinfo(self.host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            raise ConfigError(
                f"allow-list entry {self.ae_title}@{self.host}: the host name does not resolve; "
                "use an IP address or fix the name"
            ) from None
        return AllowRule(self.ae_title, self.host, frozenset(str(i[4][0]) for i in infos))

    def admits(self, calling_ae: str, address: str) -> bool:
        return calling_ae == self.ae_title and (self.host is None or address in self.addresses)


@dataclass(frozen=True)
class ReceiverConfig:
    """How the receiver listens and whom it lets in; built by :func:`receiver_config`."""

    ae_title: str
    allow: tuple[AllowRule, ...]
    bind: str = "127.0.0.1"
    port: int = 11112
    max_associations: int = 8
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS server context from the certificate and key, or None without TLS."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"--tls-cert {self.tls_cert} / --tls-key {self.tls_key}: could not load the "
                f"certificate and key ({type(exc).__name__}); expected PEM files of one pair"
            ) from None
        return context


def receiver_config(
    settings: Settings,
    *,
    port: int = 11112,
    bind: str = "127.0.0.1",
    ae_title: str | None = None,
    max_associations: int | None = None,
    allow: Sequence[str] = (),
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ReceiverConfig:
    """The receiver's configuration: the site's settings, with command-line values on top.

    The allow-list is the setting ``scp_allow`` plus every ``allow`` entry; it may not be
    empty (allow-list by default: a receiver that admits nobody is a configuration mistake).
    """
    import ipaddress

    try:
        title = check_ae_title(ae_title) if ae_title is not None else settings.scp_ae_title
    except ValueError as exc:
        raise ConfigError(f"--ae-title: {exc}") from None
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise ConfigError(f"--bind '{bind}': expected an IP address such as 127.0.0.1") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected 0 (any free port) to 65535")
    rules = [AllowRule.parse(e, "setting 'scp_allow'") for e in settings.scp_allow]
    rules += [AllowRule.parse(e, "--allow") for e in allow]
    if not rules:
        raise ConfigError(
            "no calling AE title is allowed: give --allow AE or --allow AE@host, or list them "
            "in the setting 'scp_allow' of the site's dicomhaven.yaml"
        )
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("TLS needs both --tls-cert and --tls-key (PEM files)")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"no such file: {path}")
    return ReceiverConfig(
        ae_title=title,
        allow=tuple(dict.fromkeys(rules)),
        bind=bind,
        port=port,
        max_associations=max_associations or settings.scp_max_associations,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )


@dataclass
class ReceiveSummary:
    """What a receiver run did: counts only, never an identifier."""

    job_id: int
    address: str = ""
    seconds: float = 0.0
    bytes: int = 0
    associations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    receipts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    defaced_series: int = 0  # held head series its pipeline found complete and decided

    @property
    def stored(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in {"0x0000", "0xb007"})

    def as_dict(self) -> dict[str, object]:
        return {
            "job": self.job_id,
            "address": self.address,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "stored": self.stored,
            "associations": dict(self.associations),
            "statuses": dict(self.statuses),
            "receipts": dict(self.receipts),
            "outcomes": dict(self.outcomes),
            "defaced_series": self.defaced_series,
        }

    def ledger_summary(self) -> dict[str, object]:
        return {k: v for k, v in self.as_dict().items() if k not in {"job", "address"}}


@dataclass
class _Entry:
    source: str
    receipt: Receipt
    done: Future[ReceiptResult] = field(default_factory=Future)


class _LedgerWriter:
    """One thread that enters receipts in the ledger: every store waiting at a moment goes
    into one transaction (group commit), so concurrent associations share a commit instead
    of queueing for one each."""

    def __init__(
        self,
        ledger: Ledger,
        job_id: int,
        batch_size: int,
        on_pending: Callable[[list[Pending]], None],
    ) -> None:
        self._ledger = ledger
        self._job_id = job_id
        self._batch_size = batch_size
        self._on_pending = on_pending
        self.busy: Callable[[], int] = lambda: 0  # stores in progress (set by the receiver)
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scp-ledger", daemon=True)
        self._thread.start()

    def submit(self, source: str, receipt: Receipt) -> Future[ReceiptResult]:
        entry = _Entry(source, receipt)
        self._queue.put(entry)
        return entry.done

    def close(self) -> None:
        """Commit everything submitted so far, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + _LINGER_SECONDS
            while len(batch) < self._batch_size:
                # Linger briefly while other stores are on their way: one commit for all.
                wait = deadline - time.monotonic() if len(batch) < self.busy() else 0.0
                try:
                    entry = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            by_source: dict[str, list[_Entry]] = {}
            for entry in batch:
                by_source.setdefault(entry.source, []).append(entry)
            for source, entries in by_source.items():
                self._commit(source, entries)

    def _commit(self, source: str, entries: list[_Entry]) -> None:
        try:
            results, pending = self._ledger.receive(
                self._job_id, source, [e.receipt for e in entries]
            )
        except Exception as exc:
            log.error("ledger write failed", extra={"error": type(exc).__name__,
                                                    "objects": len(entries)})  # fmt: skip
            for entry in entries:
                entry.done.set_exception(exc)
            return
        for entry, result in zip(entries, results, strict=True):
            entry.done.set_result(result)
        if pending:
            self._on_pending(pending)


class _PipelineWorker:
    """Runs the site's pipeline on received objects, apart from the network threads.

    The pipeline runs in the executor's worker processes (``workers`` of them, at least
    one), never in this process, so de-identification and OCR do not take the interpreter
    from the threads that receive. Batches are small, so a shutdown is never stuck behind
    hundreds of objects.
    """

    def __init__(self, site: Site, ledger: Ledger, job_id: int) -> None:
        from dicomhaven.ingest import pipeline_for
        from dicomhaven.pixels._series_complete import HeadSeriesWatch

        self._ledger = ledger
        self._job_id = job_id
        self._site_root = site.root
        self._batch_size = min(site.settings.ledger_batch_size, 16 * site.settings.workers)
        self._task = ProcessTask(site.root, pipeline_for(site))
        self._executor = ProcessExecutor(site.settings.workers)
        self._watch = HeadSeriesWatch(site.root, ledger.engine)
        self._deadline: float | None = None  # set by close: process until then
        self.outcomes: Counter[str] = Counter()
        self.defaced: Counter[str] = Counter()  # series decided by its defacing runs
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scp-pipeline", daemon=True)
        self._thread.start()

    def put(self, pending: list[Pending]) -> None:
        for item in pending:
            self._queue.put(item)

    def close(self, drain_seconds: float) -> None:
        """Process what is queued for up to ``drain_seconds``, then stop. Objects left
        unprocessed end ``failed`` (retryable) with a reason, so the ledger stays
        consistent and ``dicomhaven process`` (or the next receipt) finishes them."""
        self._deadline = time.monotonic() + drain_seconds
        self._queue.put(None)
        self._thread.join()
        try:
            from dicomhaven.pixels._series_complete import DefaceTask

            # This command's end: what it received is complete with a quiet period of 0.
            self._deface(DefaceTask(self._site_root, ended_jobs=(self._job_id,)))
        finally:
            self._executor.close()

    def _deface(self, task: Callable[[object], dict[str, object]]) -> None:
        """Deface the complete held head series, in a worker process (the network threads
        keep this one); a failure leaves them held, and is logged by its type."""
        try:
            for done in self._executor.imap(task, [None]):
                self.defaced.update({"series": int(str(done.get("series") or 0))})
        except Exception as exc:
            log.error("defacing complete head series failed", extra={"error": type(exc).__name__})

    def _next(self) -> Pending | None:
        """The next object to process; meanwhile, every so often, the complete head series
        are defaced (only while head slices are held)."""
        while True:
            self._watch.poll(self._deface)
            try:
                return self._queue.get(timeout=max(0.05, self._watch.seconds_left()))
            except queue.Empty:
                continue

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._next()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._defer(batch)
            else:
                self._process(batch)

    def _defer(self, batch: list[Pending]) -> None:
        reason = (
            "not processed: the receiver stopped first; 'dicomhaven process' or the next "
            "receipt processes it"
        )
        self._settle(
            [Decision(p.object_id, Outcome(ObjectStatus.FAILED, reason, "receive")) for p in batch]
        )

    def _process(self, batch: list[Pending]) -> None:
        try:
            items = ((p.object_id, p.object_key, p.intake_path) for p in batch)
            decided = list(self._executor.imap(self._task, items))
        except Exception as exc:
            # The pipeline catches a stage's failure itself; this is the executor failing.
            log.error("pipeline worker failed", extra={"error": type(exc).__name__})
            reason = (
                f"pipeline worker failed with {type(exc).__name__}; retry with 'dicomhaven process'"
            )
            decided = [
                Decision(p.object_id, Outcome(ObjectStatus.FAILED, reason, "receive"))
                for p in batch
            ]
        self._settle(decided)

    def _settle(self, decided: list[Decision]) -> None:
        try:
            self._ledger.settle(self._job_id, decided)
        except Exception as exc:
            log.error("ledger settle failed", extra={"error": type(exc).__name__,
                                                     "objects": len(decided)})  # fmt: skip
            return
        self.outcomes.update(d.outcome.status.value for d in decided)


class _SharedIntakeStore(IntakeStore):
    """The intake store shared by every association, with one writer thread per association.

    ``IntakeStore`` writes (and fsyncs) partial files on a single helper thread, which suits
    one importing process; shared by concurrent associations it would queue every fsync
    behind the others'. Its placement is already safe across threads (unique partial names,
    no-clobber links), so only the pool is widened here.
    """

    def __init__(self, root: Path, *, fsync: bool, writers: int) -> None:
        super().__init__(root, fsync=fsync)
        self._writers = writers

    def _writer(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._writers, thread_name_prefix="intake-write")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _QuickAckSocket:
    """A connected socket that acknowledges every read at once (Linux ``TCP_QUICKACK``).

    Senders such as DCMTK's storescu leave Nagle's algorithm on and write a C-STORE as a
    small command PDU followed by the data set: the data set waits for the ACK of the
    command, which the receiver, having nothing to send yet, delays by up to 40 ms. Quick
    ACKs remove that stall (measured: 250 small objects over one association in 1.2 s
    instead of 11.5 s). Everything else is the socket's own.
    """

    def __init__(self, raw: socket.socket, option: int) -> None:
        self._raw = raw
        self._option = option

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._raw.recv(size, *flags)
        self._raw.setsockopt(socket.IPPROTO_TCP, self._option, 1)  # the kernel resets it
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _on_connection_open(event: Any) -> None:
    """Our responses leave at once (no Nagle); reads are acknowledged at once (see above).
    A TLS socket is left as it is: pynetdicom looks at its type to drain TLS buffers."""
    sock = event.assoc.dul.socket
    raw = sock.socket
    if raw is None:
        return
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _TCP_QUICKACK is not None and not isinstance(raw, ssl.SSLSocket):
        raw.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        sock.socket = _QuickAckSocket(raw, _TCP_QUICKACK)


def _storage_ae(config: ReceiverConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    ae.maximum_associations = config.max_associations
    # Large PDUs (few of them: 12 bytes of header a MiB), but bounded: a sender told "no
    # limit" sends a whole object as one PDU, which pynetdicom reads into memory whole
    # (measured: 1.3 GB for a 300 MB object from pynetdicom; 130 MB with this bound).
    ae.maximum_pdu_size = _MAX_PDU_BYTES
    ae.require_called_aet = True
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    return ae


def _failure(status: int, comment: str) -> Dataset:
    """A status data set with an Error Comment (our own words, never a value from a file)."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:_ERROR_COMMENT_LENGTH]
    return ds


class _Receiver:
    """The event handlers of one receiver run, and the counters they keep."""

    def __init__(
        self,
        site: Site,
        config: ReceiverConfig,
        writer: _LedgerWriter,
        summary: ReceiveSummary,
        rules: tuple[AllowRule, ...],
    ) -> None:
        self._config = config
        self._writer = writer
        self._summary = summary
        self._site_key = site.site_key()
        self._store = _SharedIntakeStore(
            site.intake, fsync=site.settings.intake_fsync, writers=config.max_associations
        )
        self._rules = rules
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        writer.busy = lambda: self._in_flight

    def handlers(self) -> list[evt.EventHandlerType]:
        return [
            (evt.EVT_CONN_OPEN, _on_connection_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_association("accepted")),
            (evt.EVT_REJECTED, self._on_association("rejected")),
            (evt.EVT_RELEASED, self._on_association("released")),
            (evt.EVT_ABORTED, self._on_association("aborted")),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]

    def wait_idle(self) -> None:
        """Block until no C-STORE handler is running, then release the writer threads."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
        self._store.close()

    @staticmethod
    def _peer(event: Any) -> tuple[str, str]:
        requestor = event.assoc.requestor
        return str(requestor.ae_title).strip(), str(requestor.address)

    def _on_requested(self, event: Any) -> None:
        primitive = event.assoc.requestor.primitive
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        host = str(event.assoc.requestor.address)
        if not any(rule.admits(calling, host) for rule in self._rules):
            log.warning("association refused: calling AE not allowed from this host",
                        extra={"calling_ae": calling, "host": host})  # fmt: skip
            self._reject(event.assoc, _REJECT_CALLING_AE)
        elif called != self._config.ae_title:
            log.warning("association refused: called AE title is not ours",
                        extra={"calling_ae": calling, "host": host, "called_ae": called})  # fmt: skip
            self._reject(event.assoc, _REJECT_CALLED_AE)

    @staticmethod
    def _reject(assoc: Any, reason: tuple[int, int, int]) -> None:
        # As pynetdicom rejects on its own checks: send the A-ASSOCIATE-RJ, tell the
        # handlers, and wait until the reject has gone out before the socket is closed.
        assoc.acse.send_reject(*reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _on_association(self, what: str) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            calling, host = self._peer(event)
            with self._lock:
                self._summary.associations[what] += 1
            level = logging.WARNING if what in {"rejected", "aborted"} else logging.INFO
            log.log(level, f"association {what}", extra={"calling_ae": calling, "host": host})

        return handler

    def _on_echo(self, event: Any) -> int:
        calling, host = self._peer(event)
        log.info("C-ECHO", extra={"calling_ae": calling, "host": host, "status": "0x0000"})
        return StoreStatus.SUCCESS

    def _on_store(self, event: Any) -> int | Dataset:
        with self._lock:
            self._in_flight += 1
        try:
            return self._store_one(event)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _store_one(self, event: Any) -> int | Dataset:
        calling, host = self._peer(event)
        sop_class = str(event.request.AffectedSOPClassUID)
        facts: dict[str, object] = {"calling_ae": calling, "host": host, "sop_class": sop_class}
        status: int | Dataset
        try:
            receipt = received(event, self._store, self._site_key)
            facts["object"] = receipt.object_key
            result = self._writer.submit(f"dicom:{calling}", receipt).result(
                timeout=_LEDGER_WAIT_SECONDS
            )
        except Exception as exc:
            # Nothing was acknowledged: the sender keeps the object and retries later.
            log.error("C-STORE refused", extra=facts | {"error": type(exc).__name__,
                                                         "status": "0xa700"})  # fmt: skip
            self._count("0xa700", 0, None)
            return _failure(
                StoreStatus.OUT_OF_RESOURCES,
                f"could not store or record the object ({type(exc).__name__}); retry later",
            )
        if receipt.rejection == CONFLICT_REASON:
            status = _failure(StoreStatus.DUPLICATE_CONFLICT, "conflicting duplicate SOP Instance")
        elif receipt.rejection is not None:
            status = _failure(StoreStatus.CANNOT_UNDERSTAND, receipt.rejection)
        elif receipt.sop_class_uid != sop_class:
            status = StoreStatus.SOP_CLASS_MISMATCH
        else:
            status = StoreStatus.SUCCESS
        code = f"0x{int(status.Status if isinstance(status, Dataset) else status):04x}"
        self._count(code, receipt.size, result)
        log.info("C-STORE", extra=facts | {"status": code, "receipt": result.value})
        return status

    def _count(self, code: str, size: int, result: ReceiptResult | None) -> None:
        with self._lock:
            self._summary.statuses[code] += 1
            self._summary.bytes += size
            if result is not None:
                self._summary.receipts[result.value] += 1


def run_receiver(
    site: Site,
    config: ReceiverConfig,
    stop: threading.Event,
    *,
    ready: Callable[[str], None] | None = None,
    grace_seconds: float = 60.0,
    drain_seconds: float = 60.0,
) -> ReceiveSummary:
    """Receive until ``stop`` is set, then shut down cleanly and return what happened.

    Shutdown: stop listening; let running associations finish (for ``grace_seconds``, then
    abort them); commit every store that was answered or is being answered; run the pipeline
    on what was received for up to ``drain_seconds`` (the rest ends ``failed``, retryable,
    with a reason); finish the job. The ledger is then consistent. ``ready`` is called with
    ``host:port`` once the receiver listens.
    """
    ssl_context = config.ssl_context()
    rules = tuple(rule.resolved() for rule in config.allow)  # host names looked up once
    ledger = Ledger(make_engine(site.database_url))
    worker_holder: list[_PipelineWorker] = []
    job_id = ledger.start_job("receive")
    summary = ReceiveSummary(job_id=job_id)
    started = time.monotonic()
    interrupted = False
    try:
        worker = _PipelineWorker(site, ledger, job_id)
        worker_holder.append(worker)
        writer = _LedgerWriter(ledger, job_id, site.settings.ledger_batch_size, worker.put)
        try:
            chunked_receive.start(site.intake)  # before the first association
            receiver = _Receiver(site, config, writer, summary, rules)
            ae = _storage_ae(config)
            try:
                server = ae.start_server(
                    (config.bind, config.port),
                    block=False,
                    evt_handlers=receiver.handlers(),
                    ssl_context=ssl_context,
                )
                assert server is not None  # block=False returns the server
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {config.bind}:{config.port} ({exc.strerror}); choose "
                    "another --port or stop what is using it"
                ) from None
            host, port = server.server_address[:2]
            summary.address = f"{host}:{port}"
            log.info("receiver listening", extra={"address": summary.address,
                                                  "ae_title": config.ae_title, "job": job_id,
                                                  "tls": ssl_context is not None})  # fmt: skip
            if ready is not None:
                ready(summary.address)
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                server.shutdown()  # stop listening; running associations go on
                deadline = time.monotonic() + grace_seconds
                while server.active_associations and time.monotonic() < deadline:
                    time.sleep(0.05)
                for assoc in server.active_associations:
                    assoc.abort()
                for assoc in server.active_associations:
                    assoc.join(timeout=10.0)  # an aborted association's thread ends soon
                receiver.wait_idle()
        finally:
            chunked_receive.stop()
            writer.close()
    except BaseException:
        interrupted = True
        raise
    finally:
        for worker in worker_holder:
            worker.close(drain_seconds)
            summary.outcomes.update(worker.outcomes)
            summary.defaced_series += worker.defaced["series"]
        summary.seconds = time.monotonic() - started
        ledger.finish_job(job_id, summary.ledger_summary(), interrupted=interrupted)
        log.info("receiver stopped", extra=summary.ledger_summary() | {"job": job_id})
    return summary
