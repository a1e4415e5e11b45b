"""The last two steps of the pipeline: which device made the object, and the release gate.

``DeviceStage`` (right after identity, on the original header) enters the object's device
in the registry. ``ReleaseGate`` (last) scans the copy the de-identification stages
offered, records the findings, and then:

- a failed scan holds the copy, and if the device is trusted revokes the trust of the
  device's objects of the copy's *kind* (:func:`~dicomhaven.scan._devices.object_kind`),
  naming the review group that failed; the device's other kinds stay trusted;
- a copy with pixel data is held unless its pixel verdict was reached on the very bytes
  being moved (:func:`~dicomhaven.pixels._verdict.verdict_allows`: text read or triaged,
  and for a slice of a head volume, the face checked);
- a clean copy from a device that is not trusted, or of a kind whose trust was revoked
  (while ``device_gate`` is on), is held until a data manager trusts it and runs
  ``dicomhaven release``;
- otherwise the copy moves from ``quarantine/`` to ``store/`` and the object is released.
  The gate is the only code that writes into ``store/``: it writes the bytes it hashed.

Held copies stay in ``quarantine/`` with a row in ``gate_holds``, so ``dicomhaven release``
can decide again after rules or trust change without de-identifying again.

The scanner checks every ``2.25.`` UID against the site's project keys
(:class:`SiteUidCheck`): a UID that none of them made is an original one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import LedgerObject, ObjectStatus, make_engine, make_sessionmaker
from dicomhaven.catalogue._scan_models import DeviceState, GateHold, ScanFinding
from dicomhaven.identity import ProjectKeys, Vault
from dicomhaven.pipeline import Outcome, PipelineObject, StageContext
from dicomhaven.scan._detect import KnownIdentifiers, local_number_pattern
from dicomhaven.scan._devices import SYSTEM_ACTOR, DeviceIdentity, DeviceRegistry, object_kind
from dicomhaven.scan._review import group_id_of
from dicomhaven.scan._rules import Action, RuleSet, load_rules
from dicomhaven.scan._scanner import Scanner, ScanResult

__all__ = [
    "DeviceStage",
    "GateServices",
    "ReleaseGate",
    "SiteUidCheck",
    "gate_services",
    "original_values",
    "reset_gate_services",
]

#: Attributes of the original header whose values the scan searches the copy for, besides
#: what the vault knows: the object's own identifiers.
_ORIGINAL_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs",
    "ReferringPhysicianName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
)  # fmt: skip


@dataclass
class SiteUidCheck:
    """Whether one of the site's project keys (the site's own and every project's, as the
    vault keeps them) made a ``2.25.`` UID. A project created after this was loaded is
    found on the first UID no known key made."""

    vault: Vault
    keys: dict[str, ProjectKeys] = field(default_factory=dict)
    _checked: set[str] = field(default_factory=set)

    def _load(self) -> bool:
        """Add the keys of projects not yet known; whether there were any."""
        from dicomhaven.identity._vault_models import VaultProject

        with self.vault.engine.connect() as connection:
            names = set(connection.scalars(select(VaultProject.name)))
        new = names - set(self.keys)
        for name in new:
            self.keys[name] = ProjectKeys(name, self.vault.project_secret(name))
        return bool(new)

    def __call__(self, uid: str) -> bool:
        if any(keys.made_uid(uid) for keys in self.keys.values()):
            return True
        if uid in self._checked or len(self._checked) > 10_000:
            return False  # an original UID: asking the vault again would not change that
        self._checked.add(uid)
        return self._load() and any(keys.made_uid(uid) for keys in self.keys.values())


@dataclass
class GateServices:
    """One site's registry, rules and scanner, opened once per worker process."""

    site_root: Path
    registry: DeviceRegistry
    rules: RuleSet
    scanner: Scanner
    site_key: bytes
    device_gate: bool
    sessions: sessionmaker[Session]
    rule_files: tuple[Path, ...] = ()
    rules_stamp: tuple[float, ...] = ()
    #: Whether a project key of the site made a UID: the scanner's check of ``2.25.`` UIDs.
    made_uid: SiteUidCheck | None = None

    def rules_changed(self) -> bool:
        """Whether a rule file (a review decision, a site file) changed since loading."""
        return _stamp(self.rule_files) != self.rules_stamp

    def known(self, pseudonym: str | None, original: Dataset | None) -> KnownIdentifiers:
        from dicomhaven.identity._stage import known_identifiers, known_values

        values: list[str] = []
        if pseudonym:
            values += known_values(self.site_root, pseudonym)
            values += known_identifiers(self.site_root, pseudonym)
        if original is not None:
            values += original_values(original)
        return KnownIdentifiers.of(v for v in values if v and v != pseudonym)

    def record(self, object_id: int, device_id: str, result: ScanResult) -> None:
        """Replace the object's findings (and suppressions, as ``ignore``) with this scan's."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            session.execute(delete(ScanFinding).where(ScanFinding.object_id == object_id))
            if result.findings or result.suppressions:
                session.execute(
                    insert(ScanFinding),
                    [
                        {
                            "object_id": object_id,
                            "device_id": device_id,
                            "rule": f.rule,
                            "action": f.action.value,
                            "detector": f.detector.value,
                            "tag_path": f.tag_path[:255],
                            "path_pattern": f.path_pattern[:255],
                            "keyword": f.keyword[:64],
                            "vr": f.vr[:4],
                            "shape": f.shape[:64],
                            "at": now,
                        }
                        for f in (*result.findings, *result.suppressions)
                    ],
                )

    def hold(
        self, object_id: int, device_id: str, relpath: str, reason: str, kind: str = ""
    ) -> None:
        with self.sessions.begin() as session:
            session.merge(
                GateHold(
                    object_id=object_id, device_id=device_id, kind=kind[:128], path=relpath,
                    release_reason=reason, at=datetime.now(UTC),
                )
            )  # fmt: skip

    def unhold(self, object_id: int) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(GateHold).where(GateHold.object_id == object_id))

    def kind_of(self, object_id: int) -> str:
        """An object's kind, from its original's leading header in intake."""
        import pydicom

        from dicomhaven.deid._stream import leading_elements
        from dicomhaven.pipeline._stage import LEADING_TAGS_END

        with self.sessions() as session:
            intake_path = session.scalar(
                select(LedgerObject.intake_path).where(LedgerObject.id == object_id)
            )
        if intake_path is None:
            return object_kind(Dataset())
        intake_file = self.site_root / "intake" / intake_path
        header = leading_elements(intake_file.read_bytes(), LEADING_TAGS_END)
        if header is None:
            header = pydicom.dcmread(intake_file, stop_before_pixels=True, force=True)
        return object_kind(header)

    def original_of(self, object_id: int) -> Dataset:
        """An object's whole header as received (no pixels), from its original in intake."""
        import pydicom

        with self.sessions() as session:
            intake_path = session.scalar(
                select(LedgerObject.intake_path).where(LedgerObject.id == object_id)
            )
        if intake_path is None:
            return Dataset()
        intake_file = self.site_root / "intake" / intake_path
        return pydicom.dcmread(intake_file, stop_before_pixels=True, force=True)

    def decide(
        self,
        object_id: int,
        device_id: str,
        relpath: str,
        release_reason: str,
        result: ScanResult,
        kind: str | None = None,
        original: Callable[[], Dataset] | None = None,
    ) -> Outcome:
        """Release the held copy or keep it held, after its scan: the gate's one rule.
        ``kind`` is the object's :func:`object_kind`, on which trust is revoked (read from
        its original in intake when the caller does not give it); ``original`` gives its
        header as received, which says whether an image is a slice of a head volume (read
        from intake when not given, and only for a copy with pixels)."""
        from dicomhaven.pixels._verdict import verdict_allows  # loads the pixel package

        if kind is None:
            kind = self.kind_of(object_id)
        self.record(object_id, device_id, result)
        state = self.registry.state(device_id)
        if result.failed:
            if state is DeviceState.TRUSTED:
                group_id, cause = _cause(result)
                if self.registry.revoke_kind(
                    device_id, kind, group_id=group_id, cause=cause, by=SYSTEM_ACTOR
                ):
                    # once per device and kind, by the worker that revoked it
                    _audit_revocation(self.site_root, device_id, kind, group_id)
            self.hold(object_id, device_id, relpath, release_reason, kind)
            return Outcome(ObjectStatus.QUARANTINED, f"scan failed: {result.reasons()}", "gate")
        source = self.site_root / "quarantine" / relpath
        data = source.read_bytes()  # read once: the bytes checked are the bytes written
        refused = verdict_allows(
            data,
            object_id,
            original=original or (lambda: self.original_of(object_id)),
            sessions=self.sessions,
        )
        if refused is not None:
            self.unhold(object_id)  # no later decision can release it: its pixels go back
            return Outcome(ObjectStatus.QUARANTINED, refused, "gate")
        if self.device_gate and state is not DeviceState.TRUSTED:
            self.hold(object_id, device_id, relpath, release_reason, kind)
            return Outcome(
                ObjectStatus.QUARANTINED,
                f"device {device_id} is {state.value}: held until a data manager trusts it",
                "gate",
            )
        if self.device_gate and self.registry.kind_revoked(device_id, kind):
            self.hold(object_id, device_id, relpath, release_reason, kind)
            return Outcome(
                ObjectStatus.QUARANTINED,
                f"device {device_id} kind {kind} is revoked: held until a data manager trusts it",
                "gate",
            )
        self._store(relpath, data)
        source.unlink()
        self.unhold(object_id)
        return Outcome(ObjectStatus.RELEASED, release_reason, "gate")

    def _store(self, relpath: str, data: bytes) -> None:
        """Write a released copy into ``store/``: the one place in dicomhaven that does."""
        from dicomhaven.deid._stream import write_bytes  # atomic: a partial file, renamed

        write_bytes(data, self.site_root / "store" / relpath)
        index_released(self.sessions, relpath, data)


def index_released(sessions: sessionmaker[Session], relpath: str, data: bytes) -> bool:
    """Add a released copy to the catalogue, from the bytes in memory. A failure never
    un-releases the copy (``dicomhaven catalogue rebuild`` indexes it later): only its kind
    is logged, since its text may quote a value from the file."""
    import io
    import logging

    import pydicom

    from dicomhaven.catalogue._query import index_copy

    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        with sessions.begin() as session:
            index_copy(session, header, relpath)
    except Exception as exc:  # the object stays released whatever happened
        logging.getLogger(__name__).warning(
            "catalogue: not indexed (%s); run 'dicomhaven catalogue rebuild'", type(exc).__name__
        )
        return False
    return True


def _cause(result: ScanResult) -> tuple[str, str]:
    """The review group whose failure revokes a kind (the object's most frequent failing
    group), and its description: rule, detector and attribute, never a value."""
    failing = [f for f in result.findings if f.action is Action.FAIL]
    if not failing:
        return "", f"a scan failed: {result.reasons(1)}"
    ids = [group_id_of(f) for f in failing]
    group_id = max(ids, key=ids.count)
    first = failing[ids.index(group_id)]
    where = first.keyword or first.path_pattern
    more = len(set(ids)) - 1
    return group_id, (
        f"{first.rule} ({first.detector.value}) at {where}, group {group_id}"
        + (f"; and {more} more failing groups" if more else "")
    )


def _audit_revocation(site_root: Path, device_id: str, kind: str, group_id: str) -> None:
    from dicomhaven.access import AuditLog
    from dicomhaven.site import open_site

    AuditLog(make_engine(open_site(site_root).database_url)).append(
        actor=SYSTEM_ACTOR, role="system", action="revoke-device-kind",
        target=f"{device_id} {kind}"[:128],
        reason=f"a scan failed on an output of this kind (group {group_id or 'none'})",
        outcome="revoked",
    )  # fmt: skip


def original_values(header: Dataset) -> list[str]:
    """The original header's own identifying values (names split at ``^``, without their
    prefix and suffix: a title such as "Dr" names nobody, and would be found in "DR 7500")."""
    values: list[str] = []
    for keyword in _ORIGINAL_KEYWORDS:
        value = header.get(keyword)
        if value is None:
            continue
        items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        for item in items:
            text = str(item).strip()
            if text:
                if "^" in text:
                    groups = [group.split("^")[:3] for group in text.split("=")]
                    values += ["=".join("^".join(g) for g in groups)]
                    values += [part for group in groups for part in group if part]
                else:
                    values.append(text)
    return values


def _stamp(files: tuple[Path, ...]) -> tuple[float, ...]:
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in files)


def gate_services(site_root: Path) -> GateServices:
    """The site's services, loaded again when a rule file changed (a review decision made
    while a receiver runs applies to its next objects)."""
    services = _gate_services(site_root)
    if services.rules_changed():
        _gate_services.cache_clear()
        services = _gate_services(site_root)
    return services


def reset_gate_services() -> None:
    """Forget every site's loaded services (settings, rules): the next use loads them."""
    _gate_services.cache_clear()


@functools.lru_cache(maxsize=4)
def _gate_services(site_root: Path) -> GateServices:
    from dicomhaven.deid import load_profile
    from dicomhaven.site import open_site

    site = open_site(site_root)
    engine = make_engine(site.database_url)
    paths = [Path(p) if Path(p).is_absolute() else site.root / p for p in site.settings.scan_rules]
    review = site.root / "rules" / "review.yaml"
    level = load_profile(site.settings.deid_profile).level
    rules = load_rules([review, *paths] if review.exists() else paths, level=level)
    watched = (review, *paths)
    vault = site.open_vault()
    made_uid = SiteUidCheck(vault)
    return GateServices(
        site_root=site.root,
        registry=DeviceRegistry(engine, vault),
        rules=rules,
        scanner=Scanner(
            rules,
            ocr=site.settings.scan_pixels,
            made_uid=made_uid,
            local_numbers=local_number_pattern(site.settings.hospital_number_patterns),
        ),
        made_uid=made_uid,
        site_key=site.site_key(),
        device_gate=site.settings.device_gate,
        sessions=make_sessionmaker(engine),
        rule_files=watched,
        rules_stamp=_stamp(watched),
    )


@dataclass(frozen=True)
class DeviceStage:
    """Enter the object's device in the registry (a new one as untrusted)."""

    name: str = "devices"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        services = gate_services(ctx.site_root)
        identity = DeviceIdentity.of(obj.leading_header())
        obj.device_id = services.registry.register(identity, services.site_key).id
        return None


@dataclass(frozen=True)
class ReleaseGate:
    """Scan the offered copy; release it only if the scan is clean and the device trusted."""

    name: str = "gate"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        if obj.candidate is None:
            return None  # nothing was offered: the pipeline holds it
        if obj.device_id is None:
            raise RuntimeError("the release gate runs after the device stage")
        services = gate_services(ctx.site_root)
        path = ctx.site_root / "quarantine" / obj.candidate
        known = services.known(obj.pseudonym, obj.original_leading_header())
        result = services.scanner.scan_file(
            path, known, pseudonym=obj.pseudonym, device=obj.device_id
        )
        kind = object_kind(obj.original_leading_header())
        return services.decide(
            obj.object_id, obj.device_id, obj.candidate, obj.candidate_reason, result, kind,
            original=obj.original_header,
        )  # fmt: skip
