"""``ferkit predict --engine ray``: the batches run on Ray Data workers, one recogniser each
(``pip install 'ferkit[ray]'``); the records come back in input order."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import cv2

from ..inference.recognizer import Recognizer
from .predict_worker import Batch, recognise_batch
from ..errors import optional_import

RAY_WINDOW = 4096  # batches per Ray Data dataset: the driver holds one window of paths; workers start once per window


class _RayPredictor:
    """A Ray Data worker: one recogniser, built once; each row is a batch (JSON), answered with its
    records (JSON)."""

    def __init__(self, out: str, base: str, model: list[str], detector: str, align: bool, detect: bool,
                 threads: int, tta: str) -> None:
        cv2.setNumThreads(threads)
        self.rec = Recognizer(model=model, detector=detector, align=align, threads=threads, tta=tta)
        self.out, self.base, self.detect = out, base, detect

    def __call__(self, rows: dict[str, Any]) -> dict[str, list[str]]:
        return {"records": [json.dumps(recognise_batch(self.rec, json.loads(b), self.out, self.detect, self.base))
                            for b in rows["batch"]]}


def run_ray(batches: Iterator[Batch], consume: Callable[[list[dict]], None], workers: int | None,
             **worker_args: Any) -> None:
    """Each window of ``RAY_WINDOW`` batches is one Ray Data dataset: ``from_items`` -> ``map_batches``
    over ``workers`` actors (default: one per CPU of the cluster) -> results consumed in input order."""
    ray = optional_import("ray", "ray", "--engine ray")
    optional_import("ray.data", "ray", "--engine ray")
    started = not ray.is_initialized()
    if started:  # joins the cluster named by RAY_ADDRESS or started by `ray start`, else starts one here
        ray.init(include_dashboard=False, logging_level="ERROR")
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a line per dataset
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, False  # our own bar counts images
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    try:
        while window := list(itertools.islice(batches, RAY_WINDOW)):
            ds = ray.data.from_items([{"batch": json.dumps(b)} for b in window], override_num_blocks=len(window))
            ds = ds.map_batches(_RayPredictor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size),
                                num_cpus=1, fn_constructor_kwargs=worker_args)
            for row in ds.iter_rows():
                consume(json.loads(row["records"]))
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        if started:
            ray.shutdown()
