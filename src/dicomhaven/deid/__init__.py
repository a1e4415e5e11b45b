"""De-identification of DICOM headers: PS3.15 Annex E, its options, and profiles as data.

The Basic Application Level Confidentiality Profile table (Table E.1-1, with the Clean
Structured Content Option's Table E.3.4-1) generated from a pinned machine-readable source
by ``scripts/generate_annex_e.py``, and the safe private list by
``scripts/generate_safe_private.py``; the IOD adapter that resolves combined codes (X/Z,
X/D, X/Z/D, Z/D, X/Z/U*) by each attribute's Type in the object's IOD; profiles and their
modality and device layers as YAML; the engine; the pipeline stage and the folder command.
"""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
    from dicomhaven.deid._engine import DeidContext, deidentify, write_dataset
    from dicomhaven.deid._iod import AttributeType, attribute_types, iod_name, resolve_action
    from dicomhaven.deid._layers import Layer, ProfileLayers, load_layers
    from dicomhaven.deid._profile import BUILTIN_PROFILES, Level, Profile, load_layer, load_profile
    from dicomhaven.deid._stage import HELD_REASON, RELEASED_REASON, HeaderStage, unchecked_content
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
    "BUILTIN_PROFILES",
    "EDITION",
    "HELD_REASON",
    "RELEASED_REASON",
    "Action",
    "AttributeRule",
    "AttributeType",
    "ContentItemRule",
    "DeidContext",
    "HeaderStage",
    "Layer",
    "Level",
    "Option",
    "Profile",
    "ProfileLayers",
    "attribute_rule",
    "attribute_rules",
    "attribute_types",
    "content_item_rules",
    "deidentify",
    "iod_name",
    "load_layer",
    "load_layers",
    "load_profile",
    "options_conflict",
    "resolve_action",
    "unchecked_content",
    "write_dataset",
]

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("DeidContext", "deidentify", "write_dataset"), "_engine"),
    **dict.fromkeys(("AttributeType", "attribute_types", "iod_name", "resolve_action"), "_iod"),
    **dict.fromkeys(("Layer", "ProfileLayers", "load_layers"), "_layers"),
    **dict.fromkeys(
        ("BUILTIN_PROFILES", "Level", "Profile", "load_layer", "load_profile"), "_profile"
    ),
    **dict.fromkeys(
        ("HELD_REASON", "RELEASED_REASON", "HeaderStage", "unchecked_content"), "_stage"
    ),
    **dict.fromkeys(
        (
            "EDITION",
            "Action",
            "AttributeRule",
            "ContentItemRule",
            "Option",
            "attribute_rule",
            "attribute_rules",
            "content_item_rules",
            "options_conflict",
        ),
        "_table",
    ),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
