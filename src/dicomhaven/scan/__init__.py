"""The residual-PII scanner: a second, independent check of every output, with rules as
data, grouped findings for review, and the device registry and release gate it feeds."""

from dicomhaven.scan._detect import Detector, KnownIdentifiers, detect_text, value_shape
from dicomhaven.scan._rules import Action, Rule, RuleSet, load_rules
from dicomhaven.scan._scanner import Finding, Scanner, ScanResult

__all__ = [
    "Action",
    "Detector",
    "Finding",
    "KnownIdentifiers",
    "Rule",
    "RuleSet",
    "ScanResult",
    "Scanner",
    "detect_text",
    "load_rules",
    "value_shape",
]
