"""The supernet -> search -> retrain -> report pipeline on Ray Tune, resumable at any point.

:class:`Pipeline` owns the experiment's state and runs the phases of
:mod:`raynas.tune.phases` in order; each phase that trains or evaluates is one Tune
experiment, run (or restored) by :meth:`Pipeline.tune`.

The experiment folder (local path or URI) holds ``config.py`` (the frozen config),
``pipeline.json`` (which phases are done and what they produced: the pipeline's own state,
never the TrialScheduler's), one Tune experiment per phase (``supernet/``, ``search/``,
``retrain/``), the Parquet ``archive/``, the exported ``subnets/``, ``report/`` and ``best/``.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
from typing import Any

from raynas.config import apply_selection_split, config_from_text, formatted_text
from raynas.core.errors import (
    ExistingOutputError,
    InvalidValueError,
    MissingInputError,
    UnknownKeyError,
    closest,
)
from raynas.tune import PipelineError, PipelineInterrupted
from raynas.tune.archive import Archive
from raynas.tune.checks import (
    PHASES,
    STATE,
    STATE_VERSION,
    check_address,
    check_config,
    read_state,
)
from raynas.tune.options import DATA_PARALLEL, ray_init_kwargs, resolve_tune_cfg
from raynas.tune.storage import Storage
from raynas.tune.tune_state import set_aside_incomplete_sessions

__all__ = ["PHASES", "Pipeline", "PipelineError", "check_address", "ray_init_kwargs"]

CONFIG = "config.py"


class Pipeline:
    """A pipeline experiment; create with :meth:`create`, continue with ``Pipeline(uri)``."""

    def __init__(self, experiment: str | os.PathLike | Storage) -> None:
        self.storage = experiment if isinstance(experiment, Storage) else Storage(experiment)
        for name in (STATE, CONFIG):
            if not self.storage.exists(name):
                raise MissingInputError(
                    f"{self.storage.uri} is not a raynas experiment "
                    f"(no {name}); start one with `raynas run CONFIG`"
                )
        self.state = read_state(self.storage)
        self.cfg_text = self.storage.read_text(CONFIG)
        self.cfg = config_from_text(self.cfg_text)
        self.opts = resolve_tune_cfg(self.cfg.get("tune_cfg"))
        for name, entry in self.state["phases"].items():  # `raynas resume --workers N`
            if "workers" in entry:
                self.opts[name]["resources"]["workers"] = entry["workers"]

    @classmethod
    def create(
        cls, config: str | os.PathLike, storage: str, name: str, cfg_options: dict | None = None
    ) -> Pipeline:
        """Validates a config and starts a new experiment folder ``storage/name``.

        Raises:
            FileExistsError: The experiment exists (nothing is overwritten).
            KeyError, ValueError, FileNotFoundError: Bad config or missing dataset.
        """
        from raynas.config import load_config

        cfg = load_config(config, cfg_options)
        check_config(cfg)
        exp = Storage(storage).child(name)
        if exp.exists(STATE):
            raise ExistingOutputError(
                f"experiment {exp.uri} exists; continue it with `raynas resume "
                f"{exp.uri}` or choose another --name"
            )
        apply_selection_split(cfg)
        exp.write_text(formatted_text(cfg), CONFIG)
        state = {"version": STATE_VERSION, "source": str(config), "created": time.time()}
        exp.write_text(json.dumps({**state, "phases": {}}, indent=2), STATE)
        return cls(exp)

    # ---- state -------------------------------------------------------------------------
    def phase(self, name: str) -> dict[str, Any]:
        """The ``pipeline.json`` entry of phase ``name`` (created empty)."""
        return self.state["phases"].setdefault(name, {})

    def save(self) -> None:
        """Writes ``pipeline.json`` (atomically)."""
        self.storage.write_text(json.dumps(self.state, indent=2), STATE)

    def done(self, name: str) -> bool:
        return bool(self.state["phases"].get(name, {}).get("done"))

    def set_workers(self, workers: int) -> list[str]:
        """Continues the unfinished data-parallel phases on ``workers`` workers (``raynas
        resume --workers``): training goes on from the last checkpoint, exactly as far as the
        weights, optimizer and sampler go; the data order then differs from an uninterrupted
        run. Returns the phases changed.

        Raises:
            InvalidValueError: ``workers`` < 2, or no unfinished phase is data-parallel.
        """
        if not isinstance(workers, int) or workers < 2:
            raise InvalidValueError(
                f"--workers {workers}: a data-parallel phase continues on 2 or more workers "
                "(its checkpoints are Ray Train's, which a single-process trial does not read)"
            )
        phases = [n for n in DATA_PARALLEL if not self.done(n)
                  and int(self.opts[n]["resources"].get("workers", 1)) > 1]  # fmt: skip
        if not phases:
            raise InvalidValueError(
                "--workers: no unfinished phase of this experiment is data-parallel (started "
                "with tune_cfg.<phase>.resources.workers > 1); its single-process trials "
                "continue as they are"
            )
        for name in phases:
            was = self.opts[name]["resources"]["workers"]
            self.opts[name]["resources"]["workers"] = self.phase(name)["workers"] = workers
            print(f"[raynas] {name}: continues on {workers} data-parallel workers (was {was}); "
                  "the data order differs from an uninterrupted run", flush=True)  # fmt: skip
        self.save()
        return phases

    def uri(self, path: str) -> str:
        """A path that Tune returned, as a URI of the experiment's filesystem."""
        if self.storage.is_local:
            return path
        return f"{self.storage.uri.split('://', 1)[0]}://{path}"

    # ---- running -----------------------------------------------------------------------
    def run(
        self,
        address: str | None = None,
        until: str | None = None,
        quiet: bool = False,
        dashboard: bool | None = None,
    ) -> dict[str, Any]:
        """Runs every phase not done yet (up to and including ``until``); returns the state.

        Args:
            address: A Ray cluster to join (None: start a local Ray).
            until: The last phase to run.
            quiet: Only raynas' one-line progress on the console, not Tune's status tables.
            dashboard: Start the Ray dashboard of a local Ray (None: ``tune_cfg.ray``).
        """
        from raynas.tune.phases import build_phase

        if until is not None and until not in PHASES:
            raise UnknownKeyError(
                f"unknown phase {until!r}{closest(until, PHASES)}; phases: {list(PHASES)}"
            )
        self.verbose = 0 if quiet else 1
        self._init_ray(address, dashboard)
        for name in PHASES[: PHASES.index(until) + 1 if until else None]:
            phase = build_phase(name, self)
            if not phase.enabled:
                self.phase(name).update(skipped=True, done=True)
                self.save()
                continue
            if self.done(name):
                print(f"[raynas] {name}: done earlier, skipped", flush=True)
                Archive(self.storage).compact(name)  # completes an interrupted compaction
                continue
            print(f"[raynas] {name}: starting", flush=True)
            start = time.time()
            result = phase.run()
            wall_s = time.time() - start + self.phase(name).get("wall_s", 0)
            self.phase(name).update(result, done=True, wall_s=wall_s)
            self.save()
            Archive(self.storage).compact(name)
            print(f"[raynas] {name}: done in {time.time() - start:.0f} s", flush=True)
        return self.state

    def report(self) -> dict[str, Any]:
        """Writes the report again from the archive (``raynas report``)."""
        from raynas.tune.phases.report import ReportPhase

        return ReportPhase(self).run()

    def _init_ray(self, address: str | None, dashboard: bool | None = None) -> None:
        import ray

        from raynas.tune.lifeline import reap_when_gone, terminate_gracefully

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
        # the experiment state (searcher included) saved every 10 s: a killed search redoes at
        # most that much (the archive is reconciled with the restored trials); every second cost
        # 2 concurrent search trials 8% of their throughput here (experiments/orchestration/run.py)
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "10")
        check_address(address)
        opts = dict(self.opts["ray"], **({} if dashboard is None else {"dashboard": dashboard}))
        if not address:  # a local Ray instance dies with this driver, also during ray.init
            reap_when_gone()  # (its agents start before ray.init returns)
        # Ray 2.60 turns token authentication on for a local Ray and says so at every start;
        # it stays on (docs/pipeline.md), the notice is dropped
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        ray.init(**ray_init_kwargs(opts, address, os.environ))
        terminate_gracefully(ray.shutdown)

    def tune(
        self,
        phase: str,
        trainable: Any,
        param_space: dict,
        total: int,
        iters: int | None = None,
        budget: int | None = None,
        **tune_config: Any,
    ) -> Any:
        """Runs the Tune experiment of ``phase`` (or restores an interrupted one).

        Returns:
            Tune's ``ResultGrid``, every trial finished and its archive rows written.

        Raises:
            PipelineInterrupted: Tune was stopped (Ctrl-C) before every trial finished.
            PipelineError: A trial failed (after Tune's retries).
        """
        from ray import tune

        from raynas.tune.callbacks import ArchiveCallback, ProgressCallback
        from raynas.tune.factories import build_loggers

        uri = self.storage.child(phase).uri
        incomplete = set_aside_incomplete_sessions(self.storage.child(phase))
        if incomplete:
            print(f"[raynas] {phase}: set aside the half-written Tune state of session(s) "
                  f"{incomplete} (in {phase}/.incomplete/)", flush=True)  # fmt: skip
        if tune.Tuner.can_restore(uri):
            print(f"[raynas] {phase}: restoring the interrupted Tune experiment {uri}", flush=True)
            tuner = tune.Tuner.restore(
                uri, trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            run_config = tune.RunConfig(
                name=phase,
                storage_path=self.storage.uri,
                verbose=getattr(self, "verbose", 1),
                callbacks=[
                    ArchiveCallback(self.storage.uri, phase),
                    ProgressCallback(phase, total, iters, budget=budget),
                    *build_loggers(
                        self._loggers(phase), posixpath.basename(self.storage.root), phase
                    ),
                ],
                failure_config=tune.FailureConfig(max_failures=1),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            )
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                run_config=run_config,
                tune_config=tune.TuneConfig(**tune_config),
            )
        grid = tuner.fit()
        self._check_finished(phase, grid, total)
        Archive(self.storage).backfill(phase, grid, self.uri)
        return grid

    def _loggers(self, phase: str) -> list[dict[str, Any]]:
        """The experiment trackers of ``phase`` (the TSE phase's are the search's)."""
        key = phase if phase in self.opts else "search"
        return self.opts[key].get("loggers") or []

    def _check_finished(self, phase: str, grid: Any, total: int) -> None:
        errors = [r.error for r in grid if r.error]
        unfinished = len(grid) - grid.num_terminated - grid.num_errors
        if not errors and (unfinished or len(grid) < total):  # Tune returns after Ctrl-C
            raise PipelineInterrupted(
                f"{phase}: interrupted with {unfinished + total - len(grid)} of {total} "
                f"trial(s) unfinished; `raynas resume {self.storage.uri}` continues from the "
                "last checkpoints"
            )
        if errors:
            raise PipelineError(
                f"{phase}: {len(errors)} trial(s) failed; first error: "
                f"{errors[0]}. Fix the cause, then `raynas resume "
                f"{self.storage.uri}` continues from the last checkpoints."
            )
