"""The device registry: which devices are trusted, what a data manager reviews before
trusting one, and trust decisions about one device, one kind of it, or many at once.

A trust decision is audited once, naming every device it matched and their count; a
refusal is decided and audited before the registry is read. Trusting a device trusts every
kind of it (its revocations by kind are lifted); with a kind, only that kind's revocation
is lifted (the device must be trusted already) or, revoking, only that kind is revoked. A
bulk selection that matches no device is refused. Held copies are released by
``dicomhaven release``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action
from dicomhaven.catalogue import DeviceState, make_engine
from dicomhaven.errors import ConfigError
from dicomhaven.scan._devices import DeviceSelection, TrustAction, TrustChange
from dicomhaven.services._core import Grant, service
from dicomhaven.services._errors import InvalidRequest, NotFound, NothingMatched

if TYPE_CHECKING:
    from dicomhaven.scan import DeviceRecord, DeviceRegistry
    from dicomhaven.site import Site

__all__ = ["DeviceListing", "listing", "revoke", "show", "trust"]


@dataclass(frozen=True)
class DeviceListing:
    """A device, how many of its copies the gate holds, and its kinds whose trust was
    revoked (each with its cause and how many of its copies are held)."""

    record: DeviceRecord
    held: int
    revoked_kinds: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.record.as_dict(), "held": self.held, "revoked_kinds": self.revoked_kinds}


def _registry(site: Site, *, with_vault: bool = False) -> DeviceRegistry:
    from dicomhaven.scan import DeviceRegistry

    return DeviceRegistry(make_engine(site.database_url), site.open_vault() if with_vault else None)


def _revoked_kinds(
    registry: DeviceRegistry, device_id: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    held = registry.held_by_kind(device_id)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in registry.revocations(device_id):
        kinds.setdefault(r.device_id, []).append(
            {**r.as_dict(), "held": held.get((r.device_id, r.kind), 0)}
        )
    return kinds


@service(Action.READ_DEVICES)
def listing(grant: Grant, site: Site) -> list[DeviceListing]:
    """Every device seen, its trust state, its held copies and its revoked kinds."""
    from dicomhaven.scan import held_counts

    held = held_counts(site)
    registry = _registry(site)
    kinds = _revoked_kinds(registry)
    return [DeviceListing(d, held.get(d.id, 0), kinds.get(d.id, [])) for d in registry.all()]


@service(Action.REVIEW_OUTPUTS, target="{device_id}", reason="show device")
def show(grant: Grant, site: Site, device_id: str, renders: Path | None = None) -> dict[str, Any]:
    """A device's record with its sealed attributes (serial number, station name), its
    revoked kinds, the findings on its outputs and, given a folder, PNG renders of a
    sample of its held copies written there: what a data manager reviews before trusting."""
    from dicomhaven.scan._release import render_samples
    from dicomhaven.scan._review import finding_groups

    registry = _registry(site, with_vault=True)
    try:
        record = registry.get(device_id)
    except ConfigError as exc:
        raise NotFound(str(exc)) from None
    report = {
        **record.as_dict(),
        "attributes": registry.attributes(device_id),
        "revoked_kinds": _revoked_kinds(registry, device_id).get(device_id, []),
        "findings": [
            g.as_dict() for g in finding_groups(make_engine(site.database_url), device=device_id)
        ],
    }
    if renders is not None:
        report["renders"] = [str(p) for p in render_samples(site, device_id, renders)]
    return report


def _decided(verb: str) -> Any:
    def reason(arguments: Mapping[str, Any]) -> str:
        kind = arguments["kind"]
        return f"{verb}{f' kind {kind}' if kind else ''}: {arguments['reason']}"

    return reason


def _selection(arguments: Mapping[str, Any]) -> str:
    selection = arguments["selection"]
    return selection.describe() if isinstance(selection, DeviceSelection) else str(selection)


@service(Action.REVIEW_OUTPUTS, target=_selection, reason=_decided("trust"), records_allowed=True)
def trust(
    grant: Grant, site: Site, selection: DeviceSelection, reason: str, kind: str | None = None
) -> TrustChange:
    """Trust the selected devices (or, with ``kind``, that kind of them again)."""
    return _change(grant, site, selection, TrustAction.TRUST, reason, kind)


@service(Action.REVIEW_OUTPUTS, target=_selection, reason=_decided("revoke"), records_allowed=True)
def revoke(
    grant: Grant, site: Site, selection: DeviceSelection, reason: str, kind: str | None = None
) -> TrustChange:
    """Stop trusting the selected devices (or only that kind of them)."""
    return _change(grant, site, selection, TrustAction.REVOKE, reason, kind)


def _change(
    grant: Grant,
    site: Site,
    selection: DeviceSelection,
    action: TrustAction,
    reason: str,
    kind: str | None,
) -> TrustChange:
    """One decision: the devices matched, checked, audited once, then changed."""
    if not reason.strip():
        raise InvalidRequest("a trust decision needs a reason (--reason)")
    registry = _registry(site)
    if selection.device is not None:
        try:
            records = [registry.get(selection.device)]
        except ConfigError as exc:
            raise NotFound(str(exc)) from None
    elif selection.every:
        records = registry.all()
    else:
        records = registry.matching(selection.manufacturer, selection.model, selection.software)
    if not records:
        raise NothingMatched(
            f"no device matches {selection.describe()}: nothing was changed; see "
            "'dicomhaven devices list' for each device's manufacturer, model and software"
        )
    if action is TrustAction.TRUST and kind is not None:
        untrusted = [r.id for r in records if r.state is not DeviceState.TRUSTED]
        if not selection.bulk and untrusted:
            raise InvalidRequest(
                f"device {untrusted[0]} is {records[0].state.value}: trust the device "
                "(every kind) with 'dicomhaven devices trust DEVICE', not one kind"
            )
    ids = tuple(r.id for r in records)
    target = ids[0] if not selection.bulk else f"{len(ids)} devices ({selection.describe()})"
    audited = f"{action.value}{f' kind {kind}' if kind else ''}: {reason}"
    if selection.bulk:
        audited += f"; {len(ids)} devices: {', '.join(ids)}"
    grant.allow(target, audited)
    changed = [r.id for r in records if _apply(registry, r, action, kind, grant.name, reason)]
    return TrustChange(action, kind, ids, tuple(changed))


def _apply(
    registry: DeviceRegistry,
    record: DeviceRecord,
    action: TrustAction,
    kind: str | None,
    by: str,
    reason: str,
) -> bool:
    """One device's part of a trust decision; whether it changed anything."""
    if action is TrustAction.TRUST:
        if kind is not None:  # a kind of a device that is not trusted stays held anyway
            trusted = record.state is DeviceState.TRUSTED
            return trusted and registry.trust_kinds(record.id, kind) > 0
        lifted = registry.trust_kinds(record.id)
        changed = registry.set_state(record.id, DeviceState.TRUSTED, by=by, reason=reason)
        return changed or lifted > 0
    if kind is not None:
        return registry.revoke_kind(
            record.id, kind, group_id="", cause=f"revoked by {by}: {reason}", by=by
        )
    return registry.set_state(record.id, DeviceState.REVOKED, by=by, reason=reason)
