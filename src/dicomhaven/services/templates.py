"""Device templates: where each device burns text into its images, reviewed by a person.

An approved template lets the pixel stage blank a device's regions without reading every
frame (one image in ten is still read to check it); a revoked one sends its images back to
being read in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service
from dicomhaven.services._errors import NotFound

if TYPE_CHECKING:
    from dicomhaven.pixels import DeviceKey, Template, TemplateStore
    from dicomhaven.site import Site

__all__ = ["approve", "listing", "revoke"]


def _store(site: Site) -> TemplateStore:
    from dicomhaven.pixels import TemplateStore

    return TemplateStore(site.root / "templates")


def _device(store: TemplateStore, device_id: str) -> DeviceKey:
    for template in store.all():
        if template.device.id == device_id:
            return template.device
    raise NotFound(f"no template {device_id}; see 'dicomhaven templates list'")


@service(Action.READ_TEMPLATES)
def listing(grant: Grant, site: Site) -> list[Template]:
    """Every device's template: its status, regions and how many images taught it."""
    return _store(site).all()


@service(Action.REVIEW_TEMPLATES, target="{device_id}", reason="approve")
def approve(grant: Grant, site: Site, device_id: str) -> Template:
    """Approve a reviewed template, in the approving user's name."""
    store = _store(site)
    return store.approve(_device(store, device_id), grant.name)


@service(Action.REVIEW_TEMPLATES, target="{device_id}", reason="{reason}")
def revoke(grant: Grant, site: Site, device_id: str, reason: str) -> None:
    """Stop using a template; the reason is kept with it."""
    store = _store(site)
    store.revoke(_device(store, device_id), reason)
