"""The residual-PII scanner: a second, independent check of every output, with rules as
data, grouped findings for review, and the device registry and release gate it feeds."""

from dicomhaven.scan._detect import Detector, KnownIdentifiers, detect_text, value_shape
from dicomhaven.scan._devices import DeviceIdentity, DeviceRecord, DeviceRegistry
from dicomhaven.scan._release import ReleaseSummary, held_counts, release_held
from dicomhaven.scan._rules import Action, Rule, RuleSet, load_rules
from dicomhaven.scan._scanner import Finding, Scanner, ScanResult

__all__ = [
    "Action",
    "Detector",
    "DeviceIdentity",
    "DeviceRecord",
    "DeviceRegistry",
    "Finding",
    "KnownIdentifiers",
    "ReleaseSummary",
    "Rule",
    "RuleSet",
    "ScanResult",
    "Scanner",
    "detect_text",
    "held_counts",
    "load_rules",
    "release_held",
    "value_shape",
]
