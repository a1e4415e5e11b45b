"""Scanner rules as data: which findings matter, which do not, and why.

A rule file is YAML::

    rules:
      - id: dummy-names                 # unique across all files in use
        detector: name-element          # one or a list (see Detector)
        tag: "(0010,0010)"             # optional glob on the tag path; * matches anything,
                                        # sequence items are written [*]
        keyword: [PatientName]          # optional: the element's own keyword
        vr: [PN]                        # optional
        modality: [US]                  # optional: the object's Modality
        device: [device-0123abcd]       # optional: the device id from the registry
        value: "^ANONYMOUS$"            # optional: a regular expression searched in the value
        action: ignore                  # ignore | report | fail
        why: "the de-identifier's dummy"  # shown in reviews
    watch: [InstitutionName]            # attributes whose every value is reported

Files are composed in a stated order, first match wins: the review's decisions
(``SITE/rules/review.yaml``), then the site's own files (``scan_rules``), then the rules
shipped for the output's level (``publication.yaml`` adds device identity and private
elements), then the shipped defaults. A finding no rule matches is reported. Every finding and every
suppression carries the id of the rule that decided it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from dicomhaven._yaml import read_yaml
from dicomhaven.errors import ConfigError
from dicomhaven.scan._detect import Detector

__all__ = ["DEFAULT_RULE_ID", "Action", "Rule", "RuleSet", "default_rules_path", "load_rules"]

DEFAULT_RULE_ID = "no-rule"  # a finding no rule matched: reported
_RULE_KEYS = {"id", "detector", "tag", "keyword", "vr", "modality", "device", "value", "action", "why"}  # fmt: skip
_ID = re.compile(r"[a-z0-9][a-z0-9.\-]*")


class Action(StrEnum):
    IGNORE = "ignore"  # a suppression: counted under its rule, not shown as a finding
    REPORT = "report"  # shown in the review, does not block release
    FAIL = "fail"  # blocks release

    @property
    def rank(self) -> int:
        return {"ignore": 0, "report": 1, "fail": 2}[self.value]


@dataclass(frozen=True)
class Candidate:
    """What a rule is matched against: one detector hit on one element."""

    detector: Detector
    tag_path: str  # with item indices: (0040,A730)[2]/(0040,A160)
    keyword: str
    vr: str
    value: str  # the text matched; used for the rule's ``value`` condition, never stored
    modality: str = ""
    device: str = ""

    @property
    def path_pattern(self) -> str:
        """The tag path with item numbers replaced by ``*``: one shape for every item."""
        return re.sub(r"\[\d+\]", "[*]", self.tag_path)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")


@dataclass(frozen=True)
class Rule:
    id: str
    action: Action
    source: str  # file:line, for messages and reviews
    detectors: frozenset[Detector] = frozenset()
    tag: re.Pattern[str] | None = None
    keywords: frozenset[str] = frozenset()
    vrs: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    value: re.Pattern[str] | None = None
    why: str = ""

    def matches(self, c: Candidate) -> bool:
        return (
            (not self.detectors or c.detector in self.detectors)
            and (self.tag is None or bool(self.tag.match(c.path_pattern)) or bool(self.tag.match(c.tag_path)))
            and (not self.keywords or c.keyword in self.keywords)
            and (not self.vrs or c.vr in self.vrs)
            and (not self.modalities or c.modality.upper() in self.modalities)
            and (not self.devices or c.device in self.devices)
            and (self.value is None or bool(self.value.search(c.value)))
        )  # fmt: skip


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    watch: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    by_id: dict[str, Rule] = field(default_factory=dict, compare=False)

    def decide(self, candidate: Candidate) -> tuple[Action, str]:
        for rule in self.rules:
            if rule.matches(candidate):
                return rule.action, rule.id
        return Action.REPORT, DEFAULT_RULE_ID


def default_rules_path(name: str = "default") -> Path:
    return Path(str(resources.files("dicomhaven.scan") / "rules" / f"{name}.yaml"))


def load_rules(paths: Sequence[Path], *, level: str = "limited-access") -> RuleSet:
    """Rules from ``paths`` in order (first match wins), then the shipped rules for
    ``level`` (if any), then the shipped defaults."""
    rules: list[Rule] = []
    watch: set[str] = set()
    shipped = [default_rules_path(level)] if default_rules_path(level).exists() else []
    files = [*paths, *shipped, default_rules_path()]
    for path in files:
        file_rules, file_watch = _read(path)
        rules += file_rules
        watch |= file_watch
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(
                f"{rule.source}: rule id '{rule.id}' is already used at {seen[rule.id].source}"
            )
        seen[rule.id] = rule
    return RuleSet(tuple(rules), frozenset(watch), tuple(str(p) for p in files), seen)


def _read(path: Path) -> tuple[list[Rule], set[str]]:
    data, lines = read_yaml(path, "scan rules file")
    if data is None:
        return [], set()
    if not isinstance(data, dict) or set(data) - {"rules", "watch"}:
        raise ConfigError(f"{path}: a rules file has only the keys 'rules' and 'watch'")
    watch = data.get("watch", [])
    watch = [] if watch is None else watch
    if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
        raise ConfigError(f"{path}:{lines.get('watch', 1)}: 'watch' is a list of keywords")
    items = data.get("rules", [])
    items = [] if items is None else items
    if not isinstance(items, list):
        raise ConfigError(f"{path}:{lines.get('rules', 1)}: 'rules' is a list of rules")
    return [
        _rule(item, f"{path}:{lines.get(f'rules[{i}]', 1)}") for i, item in enumerate(items)
    ], set(watch)


def _strings(item: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = item.get(key)
    if value is None:
        return frozenset()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{where}: '{key}' is a string or a list of strings")
    return frozenset(values)


def _pattern(item: dict[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' is a string")
    try:
        return _glob(value) if key == "tag" else re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{where}: '{key}' is not a valid regular expression ({exc})") from None


def _rule(item: object, where: str) -> Rule:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a rule is a mapping with at least 'id' and 'action'")
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"a rule has: {', '.join(sorted(_RULE_KEYS))}"
        )
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise ConfigError(f"{where}: 'id' must be lower-case letters, digits, '.' and '-'")
    try:
        action = Action(str(item.get("action")))
    except ValueError:
        raise ConfigError(
            f"{where}: rule '{rule_id}': 'action' is one of ignore, report, fail"
        ) from None
    detectors = _strings(item, "detector", where)
    known = {d.value for d in Detector}
    if detectors - known:
        raise ConfigError(
            f"{where}: rule '{rule_id}': unknown detector(s) "
            f"{', '.join(sorted(detectors - known))}; detectors are: {', '.join(sorted(known))}"
        )
    return Rule(
        id=rule_id,
        action=action,
        source=where,
        detectors=frozenset(Detector(d) for d in detectors),
        tag=_pattern(item, "tag", where),
        keywords=_strings(item, "keyword", where),
        vrs=frozenset(v.upper() for v in _strings(item, "vr", where)),
        modalities=frozenset(m.upper() for m in _strings(item, "modality", where)),
        devices=_strings(item, "device", where),
        value=_pattern(item, "value", where),
        why=str(item.get("why", "")),
    )
