"""The pipeline's phases, in order, and the search types.

A phase is one module with one :class:`~raynas.tune.phases.base.Phase` class; adding one is a
module and an entry in :data:`PHASE_TYPES` (and its name in ``raynas.tune.checks.PHASES``).
A search type (``tune_cfg.search.type``) is a module and an entry in :data:`SEARCH_TYPES`.
"""

from __future__ import annotations

from raynas.tune.phases.base import Phase, PipelineView, TunePhase
from raynas.tune.phases.report import ReportPhase
from raynas.tune.phases.retrain import RetrainPhase
from raynas.tune.phases.search import SamplingSearch
from raynas.tune.phases.ssr import SSRSearch
from raynas.tune.phases.supernet import SupernetPhase
from raynas.tune.phases.tse import TSEPhase

__all__ = ["PHASE_TYPES", "SEARCH_TYPES", "Phase", "PipelineView", "TunePhase", "build_phase"]

SEARCH_TYPES: dict[str, type[Phase]] = {"sampling": SamplingSearch, "ssr": SSRSearch}
PHASE_TYPES: dict[str, type[Phase]] = {
    "supernet": SupernetPhase,
    "tse": TSEPhase,
    "retrain": RetrainPhase,
    "report": ReportPhase,
}


def build_phase(name: str, pipeline: PipelineView) -> Phase:
    """The phase ``name`` of ``pipeline`` (the search by ``tune_cfg.search.type``)."""
    if name == "search":
        return SEARCH_TYPES[pipeline.opts["search"]["type"]](pipeline)
    return PHASE_TYPES[name](pipeline)
