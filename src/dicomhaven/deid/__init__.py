"""De-identification of DICOM headers: PS3.15 Annex E, its options, and profiles as data.

So far: the Basic Application Level Confidentiality Profile table (Table E.1-1, with the
Clean Structured Content Option's Table E.3.4-1), generated from a pinned machine-readable
source by ``scripts/generate_annex_e.py``.
"""

from dicomhaven.deid._table import (
    EDITION,
    Action,
    AttributeRule,
    ContentItemRule,
    Option,
    attribute_rule,
    attribute_rules,
    content_item_rules,
    options_conflict,
)

__all__ = [
    "EDITION",
    "Action",
    "AttributeRule",
    "ContentItemRule",
    "Option",
    "attribute_rule",
    "attribute_rules",
    "content_item_rules",
    "options_conflict",
]
