"""Average the weights of several checkpoints of one network (a "model soup", Wortsman et al. 2022), then measure
each BatchNorm's running statistics afresh on Training faces, and write the result as one checkpoint.

    .venv/bin/python tools/soup_checkpoints.py runs/soup/best.pt runs/a/best.pt runs/b/best.pt \\
        --data ../shared/data/fer2013.csv.gz

It pays off for runs that start from the same weights (warm restarts or fine-tunes of one checkpoint, other seeds):
their weights stay in one basin, where the average is often better than each member, at the cost of one model.
Averaged BatchNorm statistics do not describe the averaged network's activations, so they are measured again:
each BatchNorm's running mean and variance over ``--images`` Training faces (no augmentation), in one pass with
cumulative averaging. Choose a soup, like any checkpoint, on PublicTest: the soup is scored on the validation split
(PublicTest for FER2013, as training scores its epochs) beside its members' recorded scores, and the checkpoint
records it as its ``val_acc``. The checkpoint keeps the first member's training configuration and classes, its run
name that of OUT's folder; the members must share network, classes, input size and normalisation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch.optim.swa_utils import update_bn

from ferkit.core.checkpoint import Checkpoint, load_checkpoint
from ferkit.core.predict import fit_input, predict_proba, to_input
from ferkit.data.dataset import Split


def average(members: list[Checkpoint]) -> Checkpoint:
    """One checkpoint whose floating-point tensors are the members' means (integer ones, the first member's)."""
    def kind(c: Checkpoint) -> tuple:
        return c.model, c.classes, c.input_size, c.channels, c.mean, c.std

    first = members[0]
    for other in members[1:]:
        if kind(other) != kind(first):
            raise SystemExit(f"the members differ in network, classes, input or normalisation: {first.model} "
                             f"{first.classes} and {other.model} {other.classes}")
    state = {}
    for key, tensor in first.state_dict.items():
        if tensor.is_floating_point():
            state[key] = (sum(m.state_dict[key].double() for m in members) / len(members)).to(tensor.dtype)
        else:
            state[key] = tensor.clone()
    return Checkpoint(**{**first.inference_only().__dict__, "state_dict": state, "epoch": None, "val_acc": None})


def measure_batchnorms(ckpt: Checkpoint, images: np.ndarray, batch: int = 256) -> Checkpoint:
    """``ckpt`` with each BatchNorm's running mean and variance those of its input over ``images`` (N, H, W) uint8."""
    net = ckpt.build_model()
    batches = (fit_input(to_input(images[start:start + batch], ckpt.mean, ckpt.std), ckpt.input_size, ckpt.channels)
               for start in range(0, len(images), batch))
    update_bn(batches, net)  # reset, then a cumulative average over the batches in train mode
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return Checkpoint(**{**ckpt.__dict__, "state_dict": state})


def validation_accuracy(ckpt: Checkpoint, split: Split) -> float:
    """``ckpt``'s accuracy on ``split`` (no TTA), as training scores its epochs."""
    probs = predict_proba(ckpt.build_model(), split.images, ckpt.mean, ckpt.std, input_size=ckpt.input_size,
                          channels=ckpt.channels)
    return float((probs.argmax(1) == split.labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the checkpoint to write (.pt)")
    parser.add_argument("members", type=Path, nargs="+", help="checkpoints (or run folders: their best.pt)")
    parser.add_argument("--data", required=True, help="the data set whose Training faces measure the BatchNorms")
    parser.add_argument("--images", type=int, default=8192, help="how many Training faces (default 8192)")
    args = parser.parse_args()
    if len(args.members) < 2:
        parser.error("give at least two checkpoints to average")
    members = [load_checkpoint(p) for p in args.members]
    soup = average(members)
    data = soup.dataset(args.data)
    train, val = data.split("train"), data.split("val")
    pick = np.sort(np.random.default_rng(0).permutation(len(train.images))[: args.images])
    soup = measure_batchnorms(soup, train.images[pick])
    soup.val_acc = validation_accuracy(soup, val)
    soup.config = {**soup.config, "name": args.out.resolve().parent.name}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    soup.save(args.out)
    recorded = ", ".join(f"{p}: {'not recorded' if m.val_acc is None else f'{100 * m.val_acc:.2f}%'}"
                         for p, m in zip(args.members, members))
    print(f"{args.out}: the mean of {len(args.members)} {soup.model} checkpoints, BatchNorms measured on "
          f"{len(pick)} {train.name} faces; {val.name} accuracy {100 * soup.val_acc:.2f}% (the members' "
          f"recorded: {recorded})")


if __name__ == "__main__":
    main()
