"""The seed systems' training recipes (``../shared/seeds/``), one name each: ``ferkit train --recipe seed000``.

A recipe is a set of :class:`~ferkit.training.config.TrainConfig` values taken from its seed's code, which each
recipe quotes; any option given beside ``--recipe`` overrides that one value. What ferkit does differently from every
seed, on purpose: the data follow the honest protocol (train on Training, select on PublicTest, report PrivateTest,
where the seeds split and score their own way), inputs are standardised by the Training mean and deviation (the seeds
feed 0..1 or raw 0..255 values), and validation images are never augmented (seed 000 augments them).
Imports neither PyTorch nor NumPy, so the command line stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.augment import AugmentConfig
from ..errors import ConfigError
from .config import TrainConfig

NO_AUGMENT = AugmentConfig.none()
SEED000_AUGMENT = AugmentConfig(flip=0.5, shift=0.1, rotate=0.0, zoom=0.2, contrast=0.0, erase=0.0)
"""Seed 000's ImageDataGenerator (horizontal flip, 10% shifts, 20% zoom), used by its three stages."""
KERAS_ADAM = {"optimizer": "adam", "weight_decay": 0.0, "schedule": "none"}
"""Keras' Adam: no weight decay (seed 000's L2 lives in its model, as ``kernel_regularizer``), a constant rate."""


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # the seed file
    description: str
    settings: dict[str, Any]
    follows: tuple[str, ...]  # the seed's lines these settings come from, verbatim
    needs_init: bool = False  # continues another run: --init CKPT must be given
    notes: tuple[str, ...] = field(default_factory=tuple)

    def config(self, **overrides: Any) -> TrainConfig:
        """The recipe's TrainConfig, with ``overrides`` (``data`` at least) on top."""
        return TrainConfig.from_dict(merged(self.name, overrides))


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("seed000", "000_67c2778e649086f2.txt", "blog CNN: cnn_model, Adam 1e-4, 30 epochs, early stop 5, "
           "shift/flip/zoom augmentation",
           {"model": "seed000_cnn", **KERAS_ADAM, "lr": 1e-4, "batch_size": 64, "epochs": 30, "patience": 5,
            "augment": SEED000_AUGMENT},
           ("model.compile(optimizer = Adam(lr=0.0001), loss='categorical_crossentropy', metrics=['accuracy'])",
            "EarlyStopping(monitor = 'val_accuracy', verbose = 1, restore_best_weights=True,mode=\"max\",patience = 5)",
            "ImageDataGenerator(width_shift_range = 0.1, height_shift_range = 0.1, horizontal_flip = True, "
            "zoom_range = 0.2)",
            "train_generator = datagen.flow(X_train, y_train, batch_size=64)",
            "history = model.fit(train_generator, epochs=30, batch_size=64, ...)"),
           notes=("kernel_regularizer=regularizers.l2(0.01) on the three 512-filter convs is part of seed000_cnn",)),
    Recipe("seed000-sgd", "000_67c2778e649086f2.txt", "blog CNN's 'Fine-tuning the Model': a new cnn_model, plain "
           "SGD 0.001, 30 epochs, early stop 5",
           {"model": "seed000_cnn", "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "schedule": "none",
            "lr": 1e-3, "batch_size": 64, "epochs": 30, "patience": 5,
            "augment": SEED000_AUGMENT},
           ("model = cnn_model()",
            "model.compile(optimizer=tf.keras.optimizers.SGD(0.001), loss='categorical_crossentropy', ...)",
            "history = model.fit(train_generator, epochs=30, batch_size=64, ..., callbacks=[checkpointer], ...)"),
           notes=("the seed builds a new cnn_model() before SGD: this stage starts from scratch, not from seed000",)),
    Recipe("seed000-finetune", "000_67c2778e649086f2.txt", "blog CNN's 'Change the Number of Epochs': continue "
           "(--init) with Adam 1e-4, 50 epochs, early stop 10",
           {"model": "seed000_cnn", **KERAS_ADAM, "lr": 1e-4, "batch_size": 64, "epochs": 50, "patience": 10,
            "augment": SEED000_AUGMENT},
           ("model.compile(optimizer = Adam(lr=0.0001), loss='categorical_crossentropy', metrics=['accuracy'])",
            "EarlyStopping(monitor = 'val_accuracy', ..., restore_best_weights=True,mode=\"max\",patience = 10)",
            "history = model.fit(train_generator, epochs=50, batch_size=64, ...)"),
           needs_init=True,
           notes=("the seed recompiles the SGD-trained model: give --init <the seed000-sgd run>/best.pt",)),
    Recipe("seed001", "001_882f868cd8a65383.txt", "Clemson report's CNN: Adam 1e-3, batch 100, 50 epochs, no "
           "augmentation",
           {"model": "seed001_cnn", **KERAS_ADAM, "lr": 1e-3, "batch_size": 100, "epochs": 50, "patience": 0,
            "augment": NO_AUGMENT},
           ("Algorithm used: Stochastic Gradient Descent also known as Adam",
            "Batch size = 100", "Epochs = 50", "Learning rate = .001",
            "loaded_model.compile(loss='categorical_crossentropy', optimizer='Adam', metrics=['accuracy', 'mse'])"),
           notes=("the report names no augmentation and no early stopping",)),
    Recipe("seed002", "002_b56987ac3e3db84b.txt", "Best Actor VGG: Adam 1e-3, plateau on val loss x0.9, early "
           "stop 10, up to 100 epochs, no augmentation",
           {"model": "seed002_vgg", **KERAS_ADAM, "lr": 1e-3, "batch_size": 64, "epochs": 100, "patience": 10,
            "schedule": "plateau", "plateau_monitor": "val_loss", "plateau_factor": 0.9, "plateau_patience": 5,
            "augment": NO_AUGMENT},
           ("adam = Adam(learning_rate=0.001)",
            "early_stopping = EarlyStopping(monitor='val_accuracy', patience=10)",
            "reduce_learning_rate = ReduceLROnPlateau(monitor='val_loss', factor=0.9, patience=5)",
            "history = cnn_model.fit(x_train, y_train, batch_size=64, epochs=100, ...)"),
           notes=("the seed's next step, training on 'hard data', pairs predictions on x_test with x_train/y_train "
                  "rows (a mismatch); --finetune-hard is the Training-only version",
                  "its last step is recipe seed002-augment")),
    Recipe("seed002-augment", "002_b56987ac3e3db84b.txt", "Best Actor VGG's last step: continue (--init) with "
           "rotation/shift/zoom/flip augmentation, same callbacks",
           {"model": "seed002_vgg", **KERAS_ADAM, "lr": 1e-3, "batch_size": 64, "epochs": 100, "patience": 10,
            "schedule": "plateau", "plateau_monitor": "val_loss", "plateau_factor": 0.9, "plateau_patience": 5,
            "augment": AugmentConfig(flip=0.5, shift=0.1, rotate=10.0, zoom=0.1, contrast=0.0, erase=0.0)},
           ("data_generator = ImageDataGenerator(..., rotation_range=10, width_shift_range=0.1, "
            "height_shift_range=0.1, zoom_range=.1, horizontal_flip=True)",
            "flow = data_generator.flow(x_train, y_train, batch_size=64)",
            "history = cnn_model.fit(flow, epochs=100, ..., callbacks=[early_stopping, reduce_learning_rate])"),
           needs_init=True,
           notes=("Keras keeps the optimizer's state and reduced rate across fit() calls; --init starts a new "
                  "Adam at 1e-3",)),
    Recipe("seed003", "003_ae0cc8e88f9fd851.txt", "webcam tutorial's CNN: Adam with ExponentialDecay(1e-4, 100000, "
           "0.96) per step, 30 epochs, no augmentation",
           {"model": "seed003_cnn", **KERAS_ADAM, "lr": 1e-4, "schedule": "exponential", "gamma": 0.96,
            "decay_steps": 100_000, "batch_size": 64, "epochs": 30, "patience": 0, "augment": NO_AUGMENT},
           ("initial_learning_rate = 0.0001",
            "lr_schedule = ExponentialDecay(initial_learning_rate, decay_steps=100000, decay_rate=0.96)",
            "optimizer = Adam(learning_rate=lr_schedule)",
            "train_data_gen = ImageDataGenerator(rescale=1./255)",
            "emotion_model.fit_generator(train_generator, steps_per_epoch=28709 // 64, epochs=30, ...)")),
    Recipe("seed004", "004_b5c6eb849b78af82.txt", "'Sequential Model' post's model 4 at 96x96 RGB: frequency "
           "encoding, in-model augmentation, Adam, batch 128, 3 epochs",
           {"model": "seed004_model4", **KERAS_ADAM, "lr": 1e-3, "batch_size": 128, "epochs": 3, "patience": 2,
            "input_size": 96, "channels": 3, "label_encoding": "frequency", "augment": NO_AUGMENT},
           ("The 96x96 input pictures with three color channels are specified by the input_shape parameter.",
            "I have used a modified version of frequency encoding in place of label encoding",
            "Model 4 has a data augmentation layer at the model's outset",
            "Epoch 3/3 225/225 [==============================] - 679s 3s/step",
            "I have performed early stopping that stops running more epochs if two performances are the same",
            "'Adam', a well-liked deep learning optimizer, is the optimizer employed"),
           notes=("the post prints no code: Adam's values are not given (Keras' default rate, 1e-3, here); 225 steps "
                  "for ~28,800 images is a batch of 128",
                  "augmentation happens inside seed004_model4 (flip, rotation, zoom, translation, contrast), so "
                  "ferkit's own is off")),
)}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose from: {', '.join(RECIPES)}") from None


def merged(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Recipe ``name``'s settings with ``given`` on top (each given setting overrides one); an ``augment`` given as
    a dict overrides only its own keys. A recipe that continues a run refuses to start without ``init``."""
    r = recipe(name)
    if r.needs_init and not given.get("init"):
        raise ConfigError(f"recipe {name} continues a run: give --init CKPT ({r.notes[0] if r.notes else ''})")
    out = {**r.settings, **given}
    if isinstance(given.get("augment"), dict):
        out["augment"] = AugmentConfig(**{**asdict(r.settings["augment"]), **given["augment"]})
    return out


def recipes_table() -> str:
    """``ferkit recipes``: each recipe, its source, what it sets (as ``ferkit train`` flags) and the seed lines."""
    lines = []
    for r in RECIPES.values():
        flags = " ".join(TrainConfig.from_dict({**r.settings, "data": "DATA"}).to_argv(exclude=("data",)))
        lines += [f"{r.name}  ({r.source}): {r.description}",
                  f"    = ferkit train --data DATA {flags}" + (" --init CKPT" if r.needs_init else "")]
        lines += [f"    seed: {line}" for line in r.follows]
        lines += [f"    note: {note}" for note in r.notes]
    return "\n".join(lines)
