"""Reviewing findings: grouped, ranked, and decided once for the whole group.

A group is every finding with the same rule, detector, tag path (items as ``[*]``),
keyword and value shape: a hundred thousand identical false alarms are one line and one
decision. A decision becomes a rule in ``SITE/rules/review.yaml``, which comes first when
rules are composed, so the next scan (and ``dicomhaven release``) applies it: *allow*
writes an ``ignore`` rule, *fail* a ``fail`` rule. Each rule names the group it came from,
who decided and why, so a rule can be traced to the findings that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select

from dicomhaven.catalogue import make_sessionmaker
from dicomhaven.catalogue._scan_models import ScanFinding
from dicomhaven.errors import ConfigError
from dicomhaven.scan._detect import shape_pattern
from dicomhaven.scan._rules import _read
from dicomhaven.scan._scanner import Finding

__all__ = [
    "Decision",
    "FindingGroup",
    "decide_group",
    "finding_groups",
    "group_id_of",
    "review_rules_path",
]

#: How much a finding of each detector says about a person, for ranking groups.
_WEIGHT = {
    "known-value": 10, "nhs-number": 10, "chi-number": 10, "name-element": 8, "phone": 6,
    "email": 6, "postcode": 6, "original-uid": 5, "identifying-attribute": 5,
    "person-name": 3, "date": 2, "private-element": 1, "overlay": 1,
}  # fmt: skip


class Decision(StrEnum):
    ALLOW = "allow"  # a false alarm: an ignore rule
    FAIL = "fail"  # a real problem: a fail rule (blocks release wherever it recurs)


@dataclass(frozen=True)
class FindingGroup:
    id: str
    rule: str
    action: str
    detector: str
    path_pattern: str
    keyword: str
    shape: str
    findings: int
    objects: int
    devices: int

    @property
    def risk(self) -> int:
        action = 1000 if self.action == "fail" else 0
        return action + _WEIGHT.get(self.detector, 1) * 10 + min(self.objects, 9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "action": self.action, "detector": self.detector,
            "tag_path": self.path_pattern, "keyword": self.keyword, "shape": self.shape,
            "findings": self.findings, "objects": self.objects, "devices": self.devices,
            "risk": self.risk,
        }  # fmt: skip


def _group_id(*parts: str) -> str:
    return "g-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]


def group_id_of(finding: Finding) -> str:
    """The id of the review group a finding falls in (the release gate names it as the
    cause when a failure revokes a kind's trust)."""
    return _group_id(
        finding.rule, finding.detector.value, finding.path_pattern[:255], finding.keyword[:64],
        finding.shape[:64],
    )  # as the gate stores them  # fmt: skip


def finding_groups(
    engine: Engine, *, device: str | None = None, suppressed: bool = False
) -> list[FindingGroup]:
    """Every group of the latest findings (of one device's outputs), highest risk first;
    with ``suppressed``, the groups ignore rules hid instead, so that each rule can be
    traced to what it suppresses."""
    sessions = make_sessionmaker(engine)
    f = ScanFinding
    keys = (f.rule, f.action, f.detector, f.path_pattern, f.keyword, f.shape)
    query = select(
        *keys,
        func.count(),
        func.count(func.distinct(f.object_id)),
        func.count(func.distinct(f.device_id)),
    ).group_by(*keys)
    if device is not None:
        query = query.where(f.device_id == device)
    query = query.where((f.action == "ignore") if suppressed else (f.action != "ignore"))
    with sessions() as session:
        rows = list(session.execute(query))
    groups = [
        FindingGroup(
            _group_id(rule, detector, path, keyword, shape),
            rule,
            action,
            detector,
            path,
            keyword,
            shape,
            n,
            objects,
            devices,
        )
        for rule, action, detector, path, keyword, shape, n, objects, devices in rows
    ]
    return sorted(groups, key=lambda g: (-g.risk, -g.findings, g.id))


def review_rules_path(site_root: Path) -> Path:
    return site_root / "rules" / "review.yaml"


def decide_group(
    site_root: Path, group: FindingGroup, decision: Decision, *, actor: str, reason: str
) -> dict[str, Any]:
    """Write the rule for a decision at the head of the review's rule file."""
    if not reason.strip():
        raise ConfigError("a review decision needs a reason")
    path = review_rules_path(site_root)
    rules: list[dict[str, Any]] = []
    if path.exists():
        _read(path)  # the file must be valid before it is extended
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rules = list(loaded.get("rules") or [])
    rule_id = f"review-{group.id[2:]}"
    rules = [r for r in rules if r.get("id") != rule_id]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    rule: dict[str, Any] = {
        "id": rule_id,
        "detector": group.detector,
        "tag": group.path_pattern,
        "action": "ignore" if decision is Decision.ALLOW else "fail",
        "why": f"{reason.strip()} ({decision.value} by {actor}, {when}; group {group.id} of "
        f"rule {group.rule})",
    }
    if group.keyword:
        rule["keyword"] = group.keyword
    if group.shape:
        rule["value"] = shape_pattern(group.shape)
    rules.insert(0, rule)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Decisions from 'dicomhaven review': the first rules of every scan (first match "
        "wins).\n"
        + yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True, width=1000)
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    _read(tmp)  # what was written reads back as valid rules
    tmp.replace(path)
    return rule
