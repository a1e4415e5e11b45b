"""Collection: getting objects into the site (folders, the DICOM receiver; pulls later)."""

from dicomhaven.collect._folder import (
    FileResult,
    IntakeTask,
    count_files,
    iter_files,
    read_files,
)
from dicomhaven.collect._scp import (
    AllowRule,
    ReceiverConfig,
    ReceiveSummary,
    StoreStatus,
    receiver_config,
    run_receiver,
)

__all__ = [
    "AllowRule",
    "FileResult",
    "IntakeTask",
    "ReceiveSummary",
    "ReceiverConfig",
    "StoreStatus",
    "count_files",
    "iter_files",
    "read_files",
    "receiver_config",
    "run_receiver",
]
