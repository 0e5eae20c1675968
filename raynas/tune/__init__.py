"""Ray Tune orchestration of the supernet -> search -> retrain pipeline (imports ray lazily)."""


class PipelineError(RuntimeError):
    """A pipeline phase failed; the message says how to continue."""


class PipelineInterrupted(PipelineError):
    """A phase was stopped (Ctrl-C, SIGTERM) before its trials finished; resume continues."""


__all__ = ["PipelineError", "PipelineInterrupted"]
