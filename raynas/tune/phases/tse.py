"""Phase 2b, re-ranking by a short fine-tune (``tune_cfg.search.tse``, off by default): the
search's best ``candidates`` (by selection-split mIoU with inherited weights) are each
fine-tuned briefly from the supernet's weights, one Tune trial each, and scored by their summed
training loss (TSE, ``score='loss'``) or by their selection-split mIoU at the fine-tune's end
(``score='mIoU'``; :mod:`raynas.tse`); the retrain phase then chooses its top-k by that score
instead of by inherited mIoU. Rows: phase ``tse``, path ``tse``, ``proxies={"tse": ...}``
(and ``"finetune_mIoU"``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

from mmseg_plugins.checkpoint import CKPT_NAME
from raynas.tune.archive import Archive, encode_rows
from raynas.tune.options import trial_resources
from raynas.tune.phases.base import TunePhase
from raynas.tune.storage import Storage
from raynas.tune.trial import archive_row, scored_on, trial_config, trial_threads

__all__ = ["TSEPhase", "tse_trial"]


def tse_trial(config: dict, cfg_text: str, opts: dict) -> None:
    """The trainable: one candidate's short fine-tune (its TSE, and its mIoU if scored so)."""
    from raynas.config import space_and_table
    from raynas.export import build_supernet, load_supernet_weights
    from raynas.tse import tse_score

    trial_threads()
    cfg = trial_config(cfg_text, opts.get("cfg_options"))
    ckpt = Storage(opts["supernet_checkpoint"]).local_copy() / CKPT_NAME
    model = build_supernet(cfg)
    load_supernet_weights(model, ckpt)
    arch = json.loads(config["arch"])
    work = Path(tune.get_context().get_trial_dir()) / "tse"
    score = tse_score(cfg, ckpt, arch, opts["iters"], opts["lr"], model=model, work_dir=work,
                      schedule=opts["schedule"], evaluate=opts["score"] == "mIoU")  # fmt: skip
    metrics = {"tse": score["tse"]}
    if "mIoU" in score:
        metrics["finetune_mIoU"] = score["mIoU"]
    space, table = space_and_table(cfg)
    row = archive_row(arch, "tse", score.get("mIoU"), table(arch), space, scored_on(cfg),
                      proxies=json.dumps(metrics))  # fmt: skip
    shown = {"mIoU": score["mIoU"]} if "mIoU" in score else {}  # the progress line's best
    tune.report({**metrics, **shown, "archive_rows": encode_rows([row])})


class TSEPhase(TunePhase):
    """TSE of the search's best candidates; skipped when ``tune_cfg.search.tse`` is None."""

    name = "tse"

    def __init__(self, pipeline: Any) -> None:
        super().__init__(pipeline)
        self.opts = dict(pipeline.opts["search"].get("tse") or {})

    @property
    def enabled(self) -> bool:
        return bool(self.opts)

    def candidates(self) -> list[dict[str, Any]]:
        state = self.pipeline.phase(self.name)
        if "candidates" not in state:  # fixed once, so a resumed phase scores the same ones
            frame = Archive(self.pipeline.storage).read("search").to_pandas()
            frame = frame[frame["feasible"]].drop_duplicates("arch")
            best = frame.sort_values("mIoU", ascending=False).head(self.opts["candidates"])
            state["candidates"] = [
                dict(arch=r.arch, mIoU=float(r.mIoU), flops=int(r.flops), trial_id=r.trial_id)
                for r in best.itertuples()
            ]
            self.pipeline.save()
        return state["candidates"]

    def trainable(self) -> Any:
        sup = self.pipeline.phase("supernet")
        opts = dict(supernet_checkpoint=sup["checkpoint"], cfg_options=sup.get("cfg_options"),
                    **{k: self.opts[k] for k in ("iters", "lr", "schedule", "score")})  # fmt: skip
        fn = tune.with_parameters(tse_trial, cfg_text=self.pipeline.cfg_text, opts=opts)
        return tune.with_resources(fn, trial_resources(self.opts))

    def param_space(self) -> dict[str, Any]:
        return {"arch": tune.grid_search([c["arch"] for c in self.candidates()])}

    def total(self) -> int:
        return len(self.candidates())

    def results(self, grid: Any) -> dict[str, Any]:
        keys = ("tse", "finetune_mIoU")
        got = {r.config["arch"]: {k: r.metrics[k] for k in keys if k in r.metrics}
               for r in grid if "tse" in (r.metrics or {})}  # fmt: skip
        return dict(scores=[dict(c, **got[c["arch"]]) for c in self.candidates()
                            if c["arch"] in got])  # fmt: skip
