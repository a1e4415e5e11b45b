"""The residual-PII scanner: a second, independent check of every output, with rules as
data, grouped findings for review, and the device registry and release gate it feeds."""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
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

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("Detector", "KnownIdentifiers", "detect_text", "value_shape"), "_detect"),
    **dict.fromkeys(("DeviceIdentity", "DeviceRecord", "DeviceRegistry"), "_devices"),
    **dict.fromkeys(("ReleaseSummary", "held_counts", "release_held"), "_release"),
    **dict.fromkeys(("Action", "Rule", "RuleSet", "load_rules"), "_rules"),
    **dict.fromkeys(("Finding", "Scanner", "ScanResult"), "_scanner"),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
