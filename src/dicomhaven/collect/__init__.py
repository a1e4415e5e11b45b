"""Collection: getting objects into the site (folders, the DICOM receiver, pulls from a PACS)."""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
    from dicomhaven.collect._criteria import Criteria, read_id_column
    from dicomhaven.collect._dicomweb import DicomWebSource
    from dicomhaven.collect._folder import (
        FileResult,
        IntakeTask,
        NotARegularFile,
        Unreadable,
        count_files,
        describe_error,
        iter_entries,
        iter_files,
        read_file,
        read_files,
    )
    from dicomhaven.collect._get import GetSource
    from dicomhaven.collect._jobs import (
        ITEM_TRANSITIONS,
        ItemView,
        JobView,
        PullError,
        PullJobs,
        backoff_seconds,
    )
    from dicomhaven.collect._pull import (
        DimseSource,
        PacsAddress,
        PullOptions,
        PullSource,
        PullSummary,
        RetrieveResult,
        embedded_receiver,
        pacs_address,
        pull_options,
        run_pull,
    )
    from dicomhaven.collect._scp import (
        AllowRule,
        ReceiverConfig,
        ReceiveSummary,
        StoreStatus,
        receiver_config,
        run_receiver,
    )
    from dicomhaven.collect._sources import SourceMethod, SourceOptions, open_source
    from dicomhaven.collect._spec import CollectionSpec, load_spec, run_collection

__all__ = [
    "ITEM_TRANSITIONS",
    "AllowRule",
    "CollectionSpec",
    "Criteria",
    "DicomWebSource",
    "DimseSource",
    "FileResult",
    "GetSource",
    "IntakeTask",
    "ItemView",
    "JobView",
    "NotARegularFile",
    "PacsAddress",
    "PullError",
    "PullJobs",
    "PullOptions",
    "PullSource",
    "PullSummary",
    "ReceiveSummary",
    "ReceiverConfig",
    "RetrieveResult",
    "SourceMethod",
    "SourceOptions",
    "StoreStatus",
    "Unreadable",
    "backoff_seconds",
    "count_files",
    "describe_error",
    "embedded_receiver",
    "iter_entries",
    "iter_files",
    "load_spec",
    "open_source",
    "pacs_address",
    "pull_options",
    "read_file",
    "read_files",
    "read_id_column",
    "receiver_config",
    "run_collection",
    "run_pull",
    "run_receiver",
]

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("Criteria", "read_id_column"), "_criteria"),
    "DicomWebSource": "_dicomweb",
    **dict.fromkeys(
        (
            "FileResult",
            "IntakeTask",
            "NotARegularFile",
            "Unreadable",
            "count_files",
            "describe_error",
            "iter_entries",
            "iter_files",
            "read_file",
            "read_files",
        ),
        "_folder",
    ),
    "GetSource": "_get",
    **dict.fromkeys(
        ("ITEM_TRANSITIONS", "ItemView", "JobView", "PullError", "PullJobs", "backoff_seconds"),
        "_jobs",
    ),
    **dict.fromkeys(
        (
            "DimseSource",
            "PacsAddress",
            "PullOptions",
            "PullSource",
            "PullSummary",
            "RetrieveResult",
            "embedded_receiver",
            "pacs_address",
            "pull_options",
            "run_pull",
        ),
        "_pull",
    ),
    **dict.fromkeys(
        (
            "AllowRule",
            "ReceiverConfig",
            "ReceiveSummary",
            "StoreStatus",
            "receiver_config",
            "run_receiver",
        ),
        "_scp",
    ),
    **dict.fromkeys(("SourceMethod", "SourceOptions", "open_source"), "_sources"),
    **dict.fromkeys(("CollectionSpec", "load_spec", "run_collection"), "_spec"),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
