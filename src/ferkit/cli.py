"""The ``ferkit`` command line: ``ferkit train|evaluate|export|predict|video|webcam|serve|models|data-report|demo``.

Each sub-command mirrors a Python function of the same name in the ``ferkit`` package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .data.augment import AugmentConfig
from .data.dataset import LABEL_SETS
from .errors import FerkitError
from .core.predict import TTA_MODES
from .training.config import CLASS_WEIGHTS, OPTIMIZERS, SCHEDULES

EPILOG = "Honest protocol: train on Training, select on PublicTest, report PrivateTest once."


def _add_data_args(p: argparse.ArgumentParser, required: bool = True, labels_default: str | None = "fer2013") -> None:
    p.add_argument("--data", required=required, metavar="PATH",
                   help="fer2013.csv, fer2013.csv.gz, fer2013.tar.gz, or an image folder with train/ and test/")
    p.add_argument("--labels", choices=LABEL_SETS, default=labels_default,
                   help="fer2013 (7 classes), ferplus (FER+ majority, 8 classes) or ferplus-soft (vote distributions)"
                        + ("" if labels_default else "; default: those the checkpoint was trained on"))
    p.add_argument("--ferplus", metavar="CSV", help="fer2013new.csv with FER+ votes (default: beside --data)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count bad rows/files instead of stopping")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", epilog=EPILOG,
                       description="Train a registered model; writes runs/<name>/ with config.json, metrics.csv, "
                                   "best.pt (best PublicTest/val accuracy) and last.pt (for --resume).")
    p.add_argument("--model", help="registry name (see `ferkit models`)")
    _add_data_args(p, required=False)
    p.add_argument("--resume", metavar="RUN", help="continue runs/<name> (or its last.pt) exactly where it stopped")
    p.add_argument("--name", help="run folder name, refused if taken (default: the model name, numbered if taken)")
    p.add_argument("--project", default="runs", help="folder holding the runs (default: runs)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd is SGD with Nesterov momentum")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 0.01 for sgd, 0.001 for adam/adamw)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before cosine")
    p.add_argument("--gamma", type=float, default=0.95, help="decay per epoch for --schedule exponential")
    p.add_argument("--plateau-patience", type=int, default=3, help="epochs before --schedule plateau halves the rate")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup Beta(alpha, alpha); 0 = off")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="moving average of the weights, updated every step with this decay (e.g. 0.999); "
                        "validation and best.pt use the average; 0 = off")
    p.add_argument("--teacher", nargs="+", default=[], metavar="CKPT",
                   help="knowledge distillation: train towards these checkpoints' averaged probabilities on Training")
    p.add_argument("--distill", type=float, default=0.5, metavar="W",
                   help="with --teacher: weight of the teachers' probabilities in the targets, the rest the labels "
                        "(default 0.5)")
    p.add_argument("--teacher-tta", choices=TTA_MODES, default="flip",
                   help="with --teacher: test-time augmentation of the teachers' predictions (default flip)")
    aug = AugmentConfig()
    p.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    p.add_argument("--flip", type=float, default=aug.flip, help="horizontal flip probability")
    p.add_argument("--shift", type=float, default=aug.shift, help="max shift, fraction of the side")
    p.add_argument("--rotate", type=float, default=aug.rotate, help="max rotation, degrees")
    p.add_argument("--zoom", type=float, default=aug.zoom, help="max zoom in/out, fraction")
    p.add_argument("--contrast", type=float, default=aug.contrast, help="max contrast change, fraction")
    p.add_argument("--erase", type=float, default=aug.erase, help="random-erasing probability")
    p.add_argument("--crop", type=int, default=aug.crop, metavar="PX",
                   help="train on random PX x PX crops of each face (e.g. 40 of 48: about 30%% fewer MACs a step); "
                        "validation and inference see the whole face; 0 = off")
    p.add_argument("--class-weights", choices=CLASS_WEIGHTS, default="none",
                   help="loss weights against class imbalance (Disgust is 1.5%% of FER2013)")
    p.add_argument("--patience", type=int, default=0, help="early stopping after N epochs without a better val accuracy")
    p.add_argument("--finetune-hard", type=int, default=0, metavar="EPOCHS",
                   help="then fine-tune on Training mistakes plus as many replayed images, at lr/10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--limit", type=int, help="at most N images per split, for quick experiments")
    p.add_argument("--val-fraction", type=float, default=0.1, help="image folders: share of train/ held out")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log metrics to <run>/tensorboard (pip install 'ferkit[tensorboard]')")
    p.add_argument("--dropout", type=float, help="rate of every Dropout layer (default: the model's own)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on CUDA: BatchNorm statistics over the whole global batch")
    p.add_argument("--amp", action="store_true",
                   help="CUDA only: bf16 autocast in the training step (refused on the CPU, where it is 5-18x slower)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint (or an ensemble) and write an HTML report", epilog=EPILOG,
                       description="Accuracy, macro-F1, classification report, confusion matrices, calibration, "
                                   "training curves and sample grids, as JSON, PNG and one self-contained HTML file. "
                                   "Several checkpoints are scored as an ensemble: their probabilities are averaged.")
    p.add_argument("checkpoint", nargs="+", help="best.pt / last.pt, or a run folder (uses its best.pt); several: an ensemble")
    _add_data_args(p, labels_default=None)
    p.add_argument("--split", default="test", help="split name or role: PrivateTest/test (default), PublicTest/val, Training/train")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    p.add_argument("--dedup", action="store_true", help="drop rows whose image also occurs in another split")
    p.add_argument("--out", help="output folder (default: <run>/eval-<split>[-tta][-dedup])")
    p.add_argument("--device", default="auto")


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (fp32 or static int8) or TFLite (mobile)",
                       description="Writes an ONNX (or TFLite) file that takes grey 48x48 faces (values 0..255) and "
                                   "returns class probabilities, then checks it against PyTorch (max abs difference) and "
                                   "compares their accuracy on the validation split (PublicTest for FER2013). "
                                   "TFLite needs pip install 'ferkit[tflite]'.")
    p.add_argument("checkpoint", help="best.pt / last.pt, or a run folder (uses its best.pt)")
    p.add_argument("--format", choices=("onnx", "tflite"), default="onnx")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation, calibrated on Training images")
    p.add_argument("--data", metavar="PATH", help="data set for calibration and the accuracy check "
                                                  "(default: the one the checkpoint was trained on, if present)")
    p.add_argument("--calibration-images", type=int, default=1000, help="Training images used to calibrate int8")
    p.add_argument("--out", help="output file (default: beside the checkpoint, .onnx, .int8.onnx or .tflite)")


def _add_recognizer_args(p: argparse.ArgumentParser, out_default: str) -> None:
    p.add_argument("--out", default=out_default, help=f"output folder (default: {out_default})")
    _add_model_args(p)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ONNX", help="ONNX model from `ferkit export` (default: the shipped model)")
    p.add_argument("--detector", choices=("blazeface", "haar"), default="blazeface",
                   help="face detector: blazeface (default; with eye landmarks for alignment) or haar (OpenCV)")
    p.add_argument("--no-align", action="store_true", help="do not level the eyes before classifying")


def _add_stream_args(p: argparse.ArgumentParser, stride_help: str) -> None:
    p.add_argument("--stride", type=int, default=1, help=stride_help)
    p.add_argument("--smooth", type=float, default=0.4, metavar="ALPHA",
                   help="weight of the newest frame in each face's running average (1 = no smoothing)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="recognise emotions of every face in photos",
                       description="Every face in every image: annotated JPEGs (box, top emotion, probability bars), "
                                   "predictions.csv (one row per face), predictions.jsonl (one line per image: boxes "
                                   "and all class probabilities, or why it could not be read) and, on request, "
                                   "predictions.parquet/, appended batch by batch with memory flat for any number of "
                                   "files. A rerun with the same --out skips the files already in predictions.jsonl "
                                   "(after a crash or Ctrl-C nothing is lost or doubled). Unreadable files are "
                                   "reported, recorded and skipped; the exit code is 1 if any failed. Works offline "
                                   "with the model shipped in the package.")
    p.add_argument("inputs", nargs="*", metavar="IMAGE|DIR|GLOB",
                   help="image files, folders (searched recursively, in name order) or globs")
    p.add_argument("--file-list", metavar="FILE",
                   help="also the inputs in FILE (files, folders or globs), one a line ('-': standard input); blank "
                        "lines and lines starting with # are skipped; relative paths are taken from the current folder")
    _add_recognizer_args(p, "runs/predict")
    p.add_argument("--no-detect", action="store_true", help="each image is already a cropped face (e.g. 48x48)")
    p.add_argument("--no-save-images", action="store_true", help="write only the result files, no annotated JPEGs")
    p.add_argument("--format", default="csv,jsonl", metavar="LIST",
                   help="comma-separated result files: csv, jsonl, parquet (default: csv,jsonl); predictions.jsonl "
                        "is always written, as the record a rerun resumes from; parquet writes "
                        "predictions.parquet/part-*.parquet, one row per image (pip install 'ferkit[parquet]')")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh: delete the result files in --out instead of resuming from them")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: Ray Data workers, one model each, on this machine or "
                        "the Ray cluster it belongs to (pip install 'ferkit[ray]'); same rows, same order")
    p.add_argument("--workers", type=int, metavar="N",
                   help="--engine ray: number of workers, one CPU each (default: every CPU of the Ray cluster)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="ONNX Runtime threads per model (default: all cores for local, 1 per Ray worker)")
    p.add_argument("--batch", type=int, default=16, metavar="N",
                   help="images read and classified together, and appended together (default 16); with --engine ray "
                        "also the images of one Ray task: larger batches cut the driver's per-task cost")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _video_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="recognise emotions through a video file",
                       description="Writes <out>/<name>.mp4 (annotated), <name>.csv (one row per face per processed "
                                   "frame, written as it goes), <name>_timeline.png and <name>_summary.json. Each face "
                                   "is followed across frames and its probabilities are smoothed against flicker. "
                                   "Ctrl-C keeps everything written so far; the summary says where it stopped.")
    p.add_argument("source", metavar="VIDEO", help="a video file (any format OpenCV's FFmpeg reads) or a stream URL")
    _add_recognizer_args(p, "runs/video")
    _add_stream_args(p, "recognise every N-th frame (the mp4 keeps every frame)")
    p.add_argument("--no-save-video", action="store_true", help="write only the CSV, timeline and summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _webcam_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("webcam", help="live recognition from a camera, in a window or headless",
                       description="Shows the camera with boxes, labels and probability bars (q or Esc quits), or with "
                                   "--headless prints a line per recognised frame (for machines without a screen). "
                                   "Both write <out>/camera<N>.csv, a timeline plot and a summary, as `ferkit video`.")
    p.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    p.add_argument("--source", help="a stream URL or a video file instead of a camera")
    p.add_argument("--headless", action="store_true", help="no window: print results and write the CSV")
    _add_recognizer_args(p, "runs/webcam")
    _add_stream_args(p, "recognise every N-th frame")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP API and web page (photo, webcam, Best Actor game)",
                       description="Serves POST /v1/predict, POST /v1/predict/batch, GET /v1/models, GET /healthz, "
                                   "API docs at /docs and the web page at /. One model is loaded once; nothing is "
                                   "fetched from outside the server and uploads are not stored.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _add_model_args(p)
    p.add_argument("--workers", type=int, default=1, help="images processed at once (default 1)")
    p.add_argument("--max-image-mb", type=float, default=10, help="largest image accepted, MiB (default 10)")
    p.add_argument("--max-batch", type=int, default=16, help="most images in one batch request (default 16)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition: train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"ferkit {__import__('ferkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    _predict_parser(sub)
    _video_parser(sub)
    _webcam_parser(sub)
    _serve_parser(sub)
    p = sub.add_parser("models", help="list registered models with parameters and MACs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = sub.add_parser("data-report", help="class counts, sample grids and the duplicate report of a data set")
    _add_data_args(p)
    p.add_argument("--out", default="runs/data-report", help="output folder (default: runs/data-report)")
    p = sub.add_parser("demo", help="recognise emotions on a bundled photo with the shipped model (offline)")
    p.add_argument("--train", action="store_true", help="instead train and evaluate a small model on synthetic faces")
    p.add_argument("--out", default="runs", help="project folder (default: runs)")
    return parser


def _train_config(a: argparse.Namespace) -> dict:
    augment = (AugmentConfig.none() if a.no_augment
               else AugmentConfig(a.flip, a.shift, a.rotate, a.zoom, a.contrast, a.erase, a.crop))
    keys = ["model", "data", "name", "project", "labels", "ferplus", "epochs", "batch_size", "optimizer", "lr",
            "momentum", "weight_decay", "schedule", "warmup_epochs", "gamma", "plateau_patience", "label_smoothing",
            "mixup", "ema", "teacher", "distill", "teacher_tta", "class_weights", "patience", "finetune_hard", "seed",
            "device", "threads", "limit", "skip_bad_rows", "val_fraction", "tensorboard", "dropout", "sync_bn", "amp"]
    return {**{k: getattr(a, k) for k in keys}, "augment": augment}


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from .training import train

        if args.resume:
            result = train(resume=args.resume, progress=not args.quiet, device=args.device, threads=args.threads)
        else:
            if not args.model or not args.data:
                raise SystemExit("ferkit train: --model and --data are required (or --resume RUN)")
            result = train(progress=not args.quiet, **_train_config(args))
        if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one line, not one per process
            print(f"best val accuracy {result.best_val_acc:.4f} at epoch {result.best_epoch}; weights: {result.run_dir / 'best.pt'}")
    elif args.command == "evaluate":
        from .evaluation import evaluate

        res = evaluate(args.checkpoint, data=args.data, split=args.split, tta=args.tta, dedup=args.dedup,
                       labels=args.labels, ferplus=args.ferplus, skip_bad_rows=args.skip_bad_rows,
                       out=args.out, device=args.device)
        m = res.metrics
        models = f", ensemble of {len(m['model'])}" if m["ensemble"] else ""
        print(f"{m['split']} ({m['num_images']} images, tta={m['tta']}{models}): accuracy {m['accuracy']:.4f}, "
              f"macro-F1 {m['macro_f1']:.4f}, ECE {m['ece']:.4f}\nreport: {res.report}")
    elif args.command == "export":
        from .export import export

        res = export(args.checkpoint, format=args.format, int8=args.int8, data=args.data, out=args.out,
                     calibration_images=args.calibration_images)
        rt = "LiteRT" if args.format == "tflite" else "ONNX Runtime"
        print(f"wrote {res.path} ({res.path.stat().st_size / 1e6:.1f} MB); max |PyTorch - {rt}| "
              f"probability difference {res.max_abs_diff:.2e}")
        if res.val_acc_torch is not None:
            print(f"validation accuracy: PyTorch {res.val_acc_torch:.4f}, {rt} {res.val_acc_export:.4f} "
                  f"({100 * (res.val_acc_export - res.val_acc_torch):+.2f} points)")
    elif args.command == "predict":
        from .apps.predict import predict_files

        if not args.inputs and not args.file_list:
            raise SystemExit("ferkit predict: give images, folders or globs, or --file-list")
        res = predict_files(args.inputs, out=args.out, model=args.model, detector=args.detector, align=not args.no_align,
                            detect=not args.no_detect, save_images=not args.no_save_images, progress=not args.quiet,
                            file_list=args.file_list, formats=[f.strip() for f in args.format.split(",") if f.strip()],
                            overwrite=args.overwrite, engine=args.engine, workers=args.workers, threads=args.threads,
                            batch=args.batch)
        print(f"{res.faces} face(s) in {res.images} image(s); results in {res.out_dir}"
              + (f"; {res.skipped} already done" if res.skipped else "")
              + (f"; {len(res.failed)} file(s) failed" if res.failed else "")
              + (f"; {res.failed_before} file(s) failed in an earlier run" if res.failed_before else ""))
        return 1 if res.failed or res.failed_before or res.images + res.skipped == 0 else 0
    elif args.command == "video":
        from .apps.video import video_file

        res = video_file(args.source, out=args.out, model=args.model, detector=args.detector, align=not args.no_align,
                         stride=args.stride,
                         smoothing=args.smooth, save_video=not args.no_save_video, max_frames=args.max_frames,
                         progress=not args.quiet)
        print(f"{res.frames_read} frames read, {res.frames_processed} recognised, {res.faces} faces, "
              f"{res.frames_read / max(res.seconds, 1e-9):.1f} frames/s; results in {res.out_dir}")
        if res.damage:
            print(f"ferkit video: {args.source} looks damaged ({res.damage}); the results cover the frames read",
                  file=sys.stderr)
            return 1
    elif args.command == "webcam":
        from .apps.webcam import webcam

        res = webcam(camera=args.camera, source=args.source, headless=args.headless, out=args.out, model=args.model,
                     detector=args.detector, align=not args.no_align, stride=args.stride, smoothing=args.smooth,
                     max_frames=args.max_frames)
        print(f"{res.frames_read} frames, {res.frames_processed} recognised, {res.faces} faces; results in {res.out_dir}")
    elif args.command == "serve":
        from .apps.server import MiB, Limits, serve

        if args.workers < 1 or args.max_batch < 1 or args.max_image_mb <= 0:
            raise ValueError("--workers and --max-batch must be >= 1 and --max-image-mb > 0")
        limits = Limits(max_image_bytes=int(args.max_image_mb * MiB), max_batch_files=args.max_batch,
                        max_request_bytes=int((args.max_batch + 1) * args.max_image_mb * MiB))
        serve(host=args.host, port=args.port, model=args.model, detector=args.detector, align=not args.no_align,
              limits=limits, workers=args.workers)
    elif args.command == "models":
        from .models.table import models_table

        print(models_table(as_json=args.json))
    elif args.command == "data-report":
        from .data.report import data_report

        print(data_report(args.data, args.out, labels=args.labels, ferplus=args.ferplus, skip_bad_rows=args.skip_bad_rows))
    elif args.command == "demo":
        from .demo import demo, demo_train

        (demo_train if args.train else demo)(Path(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        sys.exit(run(argv))
    except (FerkitError, FileNotFoundError, ImportError, RuntimeError, ValueError) as exc:  # FerkitError: bad input
        print(f"ferkit: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        sys.exit(130)
