"""Phase 4, the report: ``report/pareto.png``, ``report/report.md`` (with the majority-class
baseline), ``best/`` (config + checkpoint of the best retrained subnet, for plain mmseg); with
``search=dict(type='ssr')``, ``report/ssr.png`` (alpha entropy, candidates left and the
discretisation gap per SSR trial); with ``tune_cfg.report.baselines``,
``report/vs_baselines.png``: the retrained found models against the baselines by val mIoU and
CPU latency, and their latency in PyTorch eager and ONNX Runtime at 1 and 2 threads, all
measured here in one process."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from raynas.tune.archive import Archive
from raynas.tune.phases.base import Phase
from raynas.tune.storage import Storage

__all__ = ["ReportPhase"]


class ReportPhase(Phase):
    """Writes the report from the archive and the pipeline state; prints the tables."""

    name = "report"

    def run(self) -> dict[str, Any]:
        from raynas.report import majority_miou, plot_pareto, summary_markdown
        from raynas.report_ssr import plot_ssr, ssr_markdown

        pipeline = self.pipeline
        frame = Archive(pipeline.storage).read().to_pandas()
        val = pipeline.cfg.val_dataloader.dataset
        ann = Path(val.data_root) / val.data_prefix.seg_map_path
        classes = pipeline.cfg.model.decode_head.num_classes
        baselines = {"majority class": majority_miou(ann, classes)}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            info = self._best(tmp)
            text = summary_markdown(frame, baselines, info)
            (tmp / "report").mkdir()
            (tmp / "report" / "report.md").write_text(text)
            plot_pareto(frame, tmp / "report" / "pareto.png", baselines)
            ssr = ssr_markdown(frame)
            if ssr:  # SSR searches: entropy, candidates left, discretisation gap
                plot_ssr(frame, tmp / "report" / "ssr.png")
                text += "\n## SSR searches (last shrink step; relaxed - derived = gap)\n\n" + ssr
                (tmp / "report" / "report.md").write_text(text)
            halving = pipeline.phase("retrain").get("halving")
            if halving:
                from raynas.report import halving_markdown

                exports = pipeline.phase("retrain")["exports"]
                text += ("\n## Retrain: successive halving (selection mIoU per report)\n\n"
                         + halving_markdown(halving, exports))  # fmt: skip
                (tmp / "report" / "report.md").write_text(text)
            versus = self._vs_baselines(frame, tmp / "report")
            if versus:
                text += "\n## Found models against hand-designed ones\n\n" + versus
                (tmp / "report" / "report.md").write_text(text)
            pipeline.storage.upload(tmp / "report", "report")
        print(text, flush=True)
        return dict(baselines=baselines, rows=len(frame))

    def _vs_baselines(self, frame: Any, out: Path) -> str:
        """Latency, FLOPs and params of every retrained model and baseline; plot and table."""
        from raynas.baselines import deploy_latency, model_cost
        from raynas.config import load_config
        from raynas.report import deploy_markdown, plot_vs_baselines, vs_baselines_markdown
        from raynas.tune.phases.retrain import BASELINE_PREFIX

        exports = self.pipeline.phase("retrain").get("exports", [])
        if not any(e.get("baseline") for e in exports):
            return ""
        final = frame[(frame["phase"] == "retrain") & (frame["split"] == "val")]
        final = final.sort_values("iteration").groupby("path").tail(1)
        miou = dict(zip(final["path"], final["mIoU"], strict=True))
        rows = []
        for e in exports:
            name = e["name"]
            if e.get("baseline"):
                name = BASELINE_PREFIX + name.removeprefix("baseline-")
            if name not in miou:
                continue
            cfg = load_config(Storage(e["dir"]).local_copy() / "subnet.py")
            size = tuple(cfg.model.data_preprocessor.size)
            rows.append(dict(name=name, mIoU=float(miou[name]), baseline=bool(e.get("baseline")),
                             **model_cost(cfg.model, size),
                             deploy_ms=deploy_latency(cfg.model, size)))  # fmt: skip
        if not rows:
            return ""
        plot_vs_baselines(rows, out / "vs_baselines.png", size)
        return vs_baselines_markdown(rows) + "\n" + deploy_markdown(rows, size)

    def _best(self, tmp: Path) -> dict[str, Any] | None:
        """Uploads ``best/`` (the best retrained subnet); returns what the report says of it."""
        import torch

        from mmseg_plugins.checkpoint import (
            CKPT_NAME,
            DATASET_META_KEY,
            read_meta,
            subnet_checkpoint,
        )
        from mmseg_plugins.safe_load import load_local

        storage, best = self.pipeline.storage, self.pipeline.phase("retrain").get("best")
        if not best:
            return None
        sub = Storage(best["subnet_dir"]).local_copy()
        ckpt = load_local(str(Storage(best["checkpoint"]).local_copy() / CKPT_NAME), "cpu")
        (tmp / "best").mkdir()
        for f in ("subnet.py", "arch.yaml"):
            shutil.copy(sub / f, tmp / "best" / f)
        provenance = {"mIoU": best["mIoU"], "name": best["name"]}
        meta = read_meta(ckpt, DATASET_META_KEY)
        torch.save(subnet_checkpoint(ckpt["state_dict"], provenance, meta),
                   tmp / "best" / "subnet.pth")  # fmt: skip
        onnx = self._onnx(tmp / "best")
        storage.upload(tmp / "best", "best")
        return dict(
            best,
            config=storage.child("best", "subnet.py").uri,
            checkpoint=storage.child("best", "subnet.pth").uri,
            onnx=onnx,
        )

    @staticmethod
    def _onnx(best: Path) -> str:
        """``best/model.onnx``; an export failure is said in the report and fails nothing."""
        from raynas.onnx_export import export_onnx

        try:
            done = export_onnx(best / "subnet.py", best / "subnet.pth", best / "model.onnx")
        except Exception as err:  # any failure: the run's models stand without it
            return f"not exported ({type(err).__name__}: {err})"
        return (f"model.onnx (opset {done['opset']}, dynamic size; logits within "
                f"{done['max_abs_diff']:.1e} of PyTorch at {done['checked_sizes']})")  # fmt: skip
