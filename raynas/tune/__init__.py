"""Ray Tune orchestration of the supernet -> search -> retrain pipeline (imports ray lazily)."""


class PipelineError(RuntimeError):
    """A pipeline phase failed; the message says how to continue."""


__all__ = ["PipelineError"]
