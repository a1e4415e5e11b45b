"""The pipeline: named stages run over received objects, inline or on a process pool."""

from dicomhaven.pipeline._runner import (
    NO_RELEASE_REASON,
    Executor,
    InlineExecutor,
    Pipeline,
    ProcessExecutor,
    ProcessTask,
    make_executor,
)
from dicomhaven.pipeline._stage import Decision, Outcome, PipelineObject, Stage, StageContext

__all__ = [
    "NO_RELEASE_REASON",
    "Decision",
    "Executor",
    "InlineExecutor",
    "Outcome",
    "Pipeline",
    "PipelineObject",
    "ProcessExecutor",
    "ProcessTask",
    "Stage",
    "StageContext",
    "make_executor",
]
