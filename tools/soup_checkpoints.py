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

``--weights`` weighs the members (``--weights 2 1 1``: the first counts for half); ``--greedy`` makes Wortsman et
al.'s greedy soup, choosing its members on the validation split: the members in order of their own accuracy there,
each kept only if the soup with it scores at least as well as without (each try measures the BatchNorms again).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch.optim.swa_utils import update_bn

from ferkit.core.checkpoint import Checkpoint, load_checkpoint
from ferkit.core.predict import fit_input, predict_proba, to_input
from ferkit.data.dataset import Split


SHARED = ("model", "classes", "input_size", "channels", "mean", "std")
"""What every member of a soup must share: network, classes, input size and channels, and normalisation."""


def check_compatible(members: list[Checkpoint], names: list[str] | None = None) -> None:
    """Exit with a clear message unless the members share :data:`SHARED`: it names each setting that differs, with
    both values (``names``: the members as given, for the message)."""
    names = names or [f"member {i + 1}" for i in range(len(members))]
    first = members[0]
    for name, other in zip(names[1:], members[1:]):
        differ = [f"{key} {_shown(getattr(first, key))} against {_shown(getattr(other, key))}" for key in SHARED
                  if getattr(first, key) != getattr(other, key)]
        if differ:
            raise SystemExit(f"{names[0]} and {name} cannot be averaged: {'; '.join(differ)} (a soup needs one "
                             "network, with the same classes, input and normalisation)")


def _shown(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def average(members: list[Checkpoint], weights: list[float] | None = None) -> Checkpoint:
    """One checkpoint whose floating-point tensors are the members' means, weighted by ``weights`` (normalised to sum
    to 1; equal when None); integer tensors are the first member's."""
    weights = [1.0] * len(members) if weights is None else list(weights)
    if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
        raise SystemExit(f"give one non-negative weight per member, not all zero: {len(members)} members, "
                         f"weights {weights}")
    share = [w / sum(weights) for w in weights]
    check_compatible(members)
    first = members[0]
    state = {}
    for key, tensor in first.state_dict.items():
        if tensor.is_floating_point():
            state[key] = sum(w * m.state_dict[key].double() for w, m in zip(share, members)).to(tensor.dtype)
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


def soup(members: list[Checkpoint], faces: np.ndarray, weights: list[float] | None = None) -> Checkpoint:
    """The members' (weighted) average with its BatchNorms measured on ``faces``."""
    return measure_batchnorms(average(members, weights), faces)


def greedy_soup(members: list[Checkpoint], faces: np.ndarray, val: Split,
                log: Callable[[str], None] = print) -> tuple[list[int], Checkpoint]:
    """Wortsman et al.'s greedy soup: the members in order of their own accuracy on ``val``, each kept only if the
    soup with it scores at least as well as without. Returns the kept members' indices and the soup (the best
    member itself, as trained, when no other is kept)."""
    scores = [validation_accuracy(m, val) for m in members]
    order = sorted(range(len(members)), key=lambda i: -scores[i])
    chosen, best = [order[0]], Checkpoint(**{**members[order[0]].__dict__, "val_acc": scores[order[0]]})
    log(f"start: member {order[0] + 1} alone, {val.name} {100 * best.val_acc:.2f}%")
    for i in order[1:]:
        candidate = soup([members[j] for j in chosen + [i]], faces)
        candidate.val_acc = validation_accuracy(candidate, val)
        kept = candidate.val_acc >= best.val_acc
        log(f"{'keep' if kept else 'drop'} member {i + 1} (alone {100 * scores[i]:.2f}%): soup of "
            f"{len(chosen) + 1} {100 * candidate.val_acc:.2f}%")
        if kept:
            chosen, best = chosen + [i], candidate
    return chosen, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the checkpoint to write (.pt)")
    parser.add_argument("members", type=Path, nargs="+", help="checkpoints (or run folders: their best.pt)")
    parser.add_argument("--data", required=True, help="the data set whose Training faces measure the BatchNorms")
    parser.add_argument("--images", type=int, default=8192, help="how many Training faces (default 8192)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--weights", type=float, nargs="+", metavar="W",
                     help="one weight per member (normalised to sum to 1); default: equal weights")
    how.add_argument("--greedy", action="store_true",
                     help="a greedy soup: members in order of their validation accuracy, each kept only if the soup "
                          "scores at least as well with it (chosen on the validation split, as any checkpoint)")
    args = parser.parse_args()
    if len(args.members) < 2:
        parser.error("give at least two checkpoints to average")
    if args.weights is not None and len(args.weights) != len(args.members):
        parser.error(f"--weights takes one weight per member: {len(args.members)} members, "
                     f"{len(args.weights)} weights")
    members = [load_checkpoint(p) for p in args.members]
    check_compatible(members, [str(p) for p in args.members])  # before the greedy soup scores each member
    data = members[0].dataset(args.data)
    train, val = data.split("train"), data.split("val")
    pick = np.sort(np.random.default_rng(0).permutation(len(train.images))[: args.images])
    measured = f"BatchNorms measured on {len(pick)} {train.name} faces"
    if args.greedy:
        chosen, result = greedy_soup(members, train.images[pick], val)
        how_made = (f"the greedy soup of members {', '.join(str(i + 1) for i in sorted(chosen))} of {len(members)}, "
                    f"{measured}" if len(chosen) > 1 else
                    f"member {chosen[0] + 1} alone, as trained (no other member made the soup better)")
    else:
        result = soup(members, train.images[pick], args.weights)
        result.val_acc = validation_accuracy(result, val)
        weights = "" if args.weights is None else f" weighted {' '.join(f'{w:g}' for w in args.weights)}"
        how_made = f"the mean of {len(members)} {result.model} checkpoints{weights}, {measured}"
    result.config = {**result.config, "name": args.out.resolve().parent.name}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.save(args.out)
    recorded = ", ".join(f"{p}: {'not recorded' if m.val_acc is None else f'{100 * m.val_acc:.2f}%'}"
                         for p, m in zip(args.members, members))
    print(f"{args.out}: {how_made}; {val.name} accuracy {100 * result.val_acc:.2f}% (the members' recorded: "
          f"{recorded})")


if __name__ == "__main__":
    main()
