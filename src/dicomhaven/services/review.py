"""Findings of the release gate's scans, grouped for review, and a decision on a group.

A group is one rule, tag path and value shape, however many objects share it: one line
and one decision. A decision becomes a rule at the head of the site's review rules
(``rules/review.yaml``); ``dicomhaven release`` applies it to the held copies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action
from dicomhaven.catalogue import make_engine
from dicomhaven.services._core import Grant, service
from dicomhaven.services._errors import NotFound

if TYPE_CHECKING:
    from dicomhaven.scan._review import Decision, FindingGroup
    from dicomhaven.site import Site

__all__ = ["decide", "groups"]


@service(Action.READ_REVIEW)
def groups(grant: Grant, site: Site, suppressed: bool = False) -> list[FindingGroup]:
    """The groups of the latest findings, highest risk first; ``suppressed``: the groups
    that ignore rules hid instead, so that a rule can be traced to its effect."""
    from dicomhaven.scan._review import finding_groups

    return finding_groups(make_engine(site.database_url), suppressed=suppressed)


@service(Action.REVIEW_OUTPUTS, target="{group_id}", reason="{decision}: {reason}")
def decide(
    grant: Grant, site: Site, group_id: str, decision: Decision, reason: str
) -> dict[str, Any]:
    """Decide a group once (allow: a false alarm; fail: a real problem); returns the rule
    written, in the deciding user's name."""
    from dicomhaven.scan._review import decide_group, finding_groups

    engine = make_engine(site.database_url)
    found = {g.id: g for g in finding_groups(engine) + finding_groups(engine, suppressed=True)}
    if group_id not in found:
        raise NotFound(f"no group {group_id}; see 'dicomhaven review'")
    return decide_group(site.root, found[group_id], decision, actor=grant.name, reason=reason)
