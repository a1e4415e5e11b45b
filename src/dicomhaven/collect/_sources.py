"""Choosing and opening the source of a pull: C-MOVE (with or without a receiver of our own),
C-GET or DICOMweb. One place, so ``dicomhaven pull`` and ``dicomhaven collect run`` open
sources alike and refuse the same contradictory options."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from dicomhaven.collect._dicomweb import DicomWebSource
from dicomhaven.collect._get import GetSource
from dicomhaven.collect._pull import DimseSource, PullSource, embedded_receiver, pacs_address
from dicomhaven.collect._scp import receiver_config
from dicomhaven.errors import ConfigError

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["SourceMethod", "SourceOptions", "open_source"]


class SourceMethod(StrEnum):
    """How a pull fetches instances."""

    MOVE = "move"  # C-FIND, then C-MOVE to our receiver
    GET = "get"  # C-FIND, then C-GET on our own association
    DICOMWEB = "dicomweb"  # QIDO-RS, then WADO-RS


@dataclass(frozen=True)
class SourceOptions:
    """Where to pull from and how; ``None`` means the site's setting."""

    method: SourceMethod = SourceMethod.MOVE
    pacs_host: str | None = None
    pacs_port: int | None = None
    pacs_ae: str | None = None
    calling_ae: str | None = None
    destination: str | None = None
    receive_port: int | None = None
    receive_bind: str = "127.0.0.1"
    dicomweb_url: str | None = None
    drain_seconds: float = 60.0

    def check(self) -> None:
        """Refuse options the chosen method would ignore (never silently dropped)."""
        unused: dict[str, object] = {}
        if self.method is SourceMethod.DICOMWEB:
            if not self.dicomweb_url:
                raise ConfigError("DICOMweb needs the service's base URL (--dicomweb URL)")
            unused = {"--pacs-host": self.pacs_host, "--pacs-port": self.pacs_port,
                      "--pacs-ae": self.pacs_ae, "--calling-ae": self.calling_ae,
                      "--destination": self.destination, "--receive-port": self.receive_port}  # fmt: skip
        elif self.method is SourceMethod.GET:
            unused = {"--destination": self.destination, "--receive-port": self.receive_port,
                      "--dicomweb": self.dicomweb_url}  # fmt: skip
        else:
            unused = {"--dicomweb": self.dicomweb_url}
        given = [name for name, value in unused.items() if value is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)}: not used with the {self.method} method; leave them out"
            )


@contextlib.contextmanager
def open_source(
    site: Site, options: SourceOptions, *, receiving: Callable[[str, str], None] | None = None
) -> Iterator[PullSource]:
    """The source, ready to pull from; with ``receive_port``, the site's receiver runs in
    this process while the block runs (``receiving`` is told its address and AE title).
    Leaving the block stops what was started and finishes its ledger jobs."""
    options.check()
    if options.method is SourceMethod.DICOMWEB:
        assert options.dicomweb_url is not None
        with DicomWebSource(options.dicomweb_url, site, drain_seconds=options.drain_seconds) as web:
            yield web
        return
    address = pacs_address(
        site.settings, host=options.pacs_host, port=options.pacs_port,
        ae_title=options.pacs_ae, calling_ae=options.calling_ae,
        destination=options.destination,
    )  # fmt: skip
    if options.method is SourceMethod.GET:
        with GetSource(address, site, drain_seconds=options.drain_seconds) as get:
            yield get
        return
    if options.receive_port is None:
        yield DimseSource(address)
        return
    config = receiver_config(
        site.settings, port=options.receive_port, bind=options.receive_bind,
        ae_title=address.destination, allow=[f"{address.ae_title}@{address.host}"],
    )  # fmt: skip
    with embedded_receiver(site, config, drain_seconds=options.drain_seconds) as where:
        if receiving is not None:
            receiving(where, address.destination)
        yield DimseSource(address)
