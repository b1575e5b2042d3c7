""":class:`TransferTrainer`: fine-tune a pretrained ``keras.applications`` base.

Everything :class:`~emotionkit.training.Trainer` does (outputs, checkpoints, ``resume``,
augmentation, class balancing, label subsets through the dataset) plus: the base's
initial weights (``imagenet``, ``none`` or a local file) and an optional two-phase
schedule (train the new head with the base frozen, then also the base's last blocks).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from ..classifiers.config import ModelConfig
from ..hub import file_sha256
from .applications import base_of, set_trainable_blocks
from .datasets import ImageData
from .trainer import _RESUME_MUST_MATCH, Trainer, TrainingError, _check_finite

__all__ = ["TransferTrainer"]

log = logging.getLogger("emotionkit.training")

_FINETUNE_DIR = "finetune"


class TransferTrainer(Trainer):
    """Train a transfer architecture (``vgg19``, ``resnet50``, ``transfer`` ...).

    Takes every :class:`~emotionkit.training.Trainer` argument (with defaults suited to
    fine-tuning: ``learning_rate=1e-5``, ``epochs=30``, ``patience=5``,
    ``class_weight="oversample"``) and:

    Args:
        base_weights: the base's starting weights: ``"imagenet"`` (downloaded by Keras to
            ``~/.keras/models`` on first use; needs internet), ``"none"`` (Keras's random
            initialisation; see the ``batch_norm`` architecture option for VGG), or the
            path of a weights file for the base without its top (e.g. Keras's
            ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``) for offline machines,
            or of a ``.keras`` model trained here with a transfer architecture (its base
            is taken, e.g. one trained on all 7 labels to start a 3-label run).
            Used when a run starts; a resumed run continues from its checkpoint. Not used
            with ``init_from`` (which sets every weight, the base's included).
        head_epochs: two-phase schedule: for this many epochs only the new head trains
            (base frozen) at ``head_learning_rate``; then the base's last
            ``trainable_blocks`` blocks (an architecture option) train too at
            ``learning_rate``. ``0``: one phase with those blocks trainable from the start.
        head_learning_rate: peak learning rate of the head phase.
    """

    resume_must_match = (*_RESUME_MUST_MATCH, "head_epochs")
    resume_keeps = ("base_weights", "base_weights_sha256")

    def __init__(
        self,
        out_dir: str | Path,
        arch: str = "vgg19",
        *,
        base_weights: str | Path = "imagenet",
        head_epochs: int = 0,
        head_learning_rate: float = 1e-3,
        learning_rate: float = 1e-5,
        epochs: int = 30,
        patience: int = 5,
        class_weight: str = "oversample",
        **kwargs: Any,
    ) -> None:
        super().__init__(out_dir, arch, learning_rate=learning_rate, epochs=epochs,
                         patience=patience, class_weight=class_weight, **kwargs)
        if not self.architecture.transfer:
            raise TrainingError(
                f"architecture {arch!r} has no pretrained base; train it with Trainer"
            )
        _check_finite(head_learning_rate=head_learning_rate)
        if head_epochs < 0 or head_learning_rate <= 0:
            raise TrainingError("head_epochs must be >= 0 and head_learning_rate positive")
        weights = str(base_weights)
        if weights not in ("imagenet", "none") and not Path(weights).is_file():
            raise TrainingError(
                f"base weights {weights}: no such file; pass 'imagenet', 'none' or the path "
                "of a weights file"
            )
        self.args.update({
            "base_weights": weights,
            "base_weights_sha256": file_sha256(weights) if Path(weights).is_file() else None,
            "head_epochs": int(head_epochs),
            "head_learning_rate": float(head_learning_rate),
        })

    def _default_weights(self, keras: Any, model: Any) -> None:
        """Load ``base_weights`` into the model's application base (the head stays random)."""
        base = base_of(model)
        weights = self.args["base_weights"]
        if weights == "none":
            return
        from ..classifiers._keras_layers import application_constructor

        name = self.args["arch_options"]["base"]
        constructor = application_constructor(name)
        if weights == "imagenet":
            try:
                source = constructor(
                    include_top=False, weights="imagenet", input_shape=base.input_shape[1:]
                )
            except Exception as exc:  # Keras raises many kinds on download
                raise TrainingError(
                    f"cannot get the ImageNet weights of {name} ({type(exc).__name__}: "
                    f"{exc}); offline, pass base_weights=PATH (--base-weights PATH: a local "
                    "no-top weights file) or base_weights=\"none\" (--base-weights none)"
                ) from exc
        elif weights.lower().endswith(".keras"):  # a model trained here: take its base
            from ..classifiers.keras_model import _load_keras_model
            from ..errors import ModelLoadError

            try:
                source = base_of(_load_keras_model(Path(weights)))
            except ModelLoadError as exc:
                raise TrainingError(f"base weights {exc}") from exc
            except ValueError as exc:  # base_of: no nested application base
                raise TrainingError(
                    f"base weights {weights}: {exc}; pass a model trained with a transfer "
                    "architecture, a no-top weights file, 'imagenet' or 'none'"
                ) from exc
        else:
            stored = _stored_layer_count(weights)
            if stored in (None, len(base.layers)):
                try:  # a file saved from a base like this one (e.g. a VGG-BN pre-trained here)
                    with warnings.catch_warnings():  # Keras warns per layer it cannot fill
                        warnings.simplefilter("ignore")
                        base.load_weights(weights)
                    log.info("base %s: weights from %s", name, weights)
                    return
                except Exception:  # h5py/Keras raise many kinds; try the plain application
                    pass
            source = constructor(include_top=False, weights=None,
                                 input_shape=base.input_shape[1:])
            if stored not in (None, len(source.layers)):
                # Keras 3 files match layers by order: a VGG-BN file would load into a
                # plain VGG's convolutions and silently leave its batch norm behind
                raise TrainingError(
                    f"base weights {weights}: saved from a base of {stored} layers, but "
                    f"this run's {name} base has {len(base.layers)} and a plain {name} "
                    f"{len(source.layers)}; a file saved from a base with batch norm "
                    "needs --arch-option batch_norm=true, otherwise pass the base's own file"
                )
            try:
                source.load_weights(weights)
            except Exception as exc:  # h5py/Keras raise many kinds
                raise TrainingError(
                    f"base weights {weights}: cannot load into {name} without its top, "
                    f"nor into this run's base ({type(exc).__name__}: {exc})"
                ) from exc
        _copy_base_weights(source, base, weights)
        log.info("base %s: weights from %s", name, weights)

    def _schedule(
        self, keras: Any, config: ModelConfig, model: Any, train_model: Any, train: ImageData,
        val: ImageData, state: dict[str, Any],
    ) -> None:
        """Head phase (base frozen) if ``head_epochs``, then the trainable blocks too."""
        args = self.args
        base = base_of(model)
        index = self._epoch_index(train)
        head = min(args["head_epochs"], args["epochs"])
        finetune_dir = self.checkpoint_dir / _FINETUNE_DIR
        if head:
            base.trainable = False
            self._compile(keras, train_model, args["head_learning_rate"], len(index), head)
            if state["epoch"] < head:
                log.info("phase 1: head only, %d epochs", head)
                self._fit(keras, train_model, model, config, train, val, state, index,
                          epochs=head, backup_dir=self.checkpoint_dir, early_stopping=False)
            elif self._backed_up_epochs(finetune_dir) == 0:
                # resumed between the phases: start phase 2 from phase 1's last weights
                train_model.optimizer.build(train_model.trainable_variables)
                train_model.load_weights(self.checkpoint_dir / "latest.weights.h5")
        if state["epoch"] >= args["epochs"] or state.get("stopped_early"):
            return
        if head and state["epoch"] == head:
            state["wait"] = 0  # early stopping counts phase 2's epochs only
        set_trainable_blocks(base, args["arch_options"]["trainable_blocks"])
        log.info("%s: base blocks training: %d", "phase 2" if head else "training",
                 args["arch_options"]["trainable_blocks"])
        self._compile(keras, train_model, args["learning_rate"], len(index),
                      args["epochs"] - head)
        self._fit(keras, train_model, model, config, train, val, state, index,
                  epochs=args["epochs"], initial_epoch=head,
                  backup_dir=finetune_dir if head else self.checkpoint_dir)


def _stored_layer_count(path: str | Path) -> int | None:
    """How many layers a Keras 3 ``.weights.h5`` file holds (``None``: another format)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            layers = f.get("layers")
            return len(layers) if isinstance(layers, h5py.Group) else None
    except OSError:  # missing or not HDF5: the loaders below say so
        return None


def _copy_base_weights(source: Any, base: Any, weights: str) -> None:
    """Copy every layer's weights of ``source`` into the same layer of ``base``.

    Two instances of one application pair up layer by layer (the names that Keras counts,
    such as EfficientNet's ``normalization_3``, differ between them). Otherwise layers pair
    by name: ``base`` may have more (batch norm added by ``batch_norm=True``: they keep
    their initial values); a ``source`` layer without a place in ``base`` is an error,
    never a silent drop.
    """
    if [type(layer) for layer in source.layers] == [type(layer) for layer in base.layers]:
        pairs = [(layer, target) for layer, target in zip(source.layers, base.layers)
                 if layer.weights]
    else:
        targets = {layer.name: layer for layer in base.layers if layer.weights}
        extra = [layer.name for layer in source.layers
                 if layer.weights and layer.name not in targets]
        if extra:
            raise TrainingError(
                f"base weights {weights}: {len(extra)} of its layers ({extra[0]}, ...) have "
                "no place in this run's base; one saved with batch norm needs --arch-option "
                "batch_norm=true, and the base must be the same application"
            )
        pairs = [(layer, targets[layer.name]) for layer in source.layers if layer.weights]
    for layer, target in pairs:
        try:
            target.set_weights(layer.get_weights())
        except ValueError as exc:
            raise TrainingError(
                f"base weights {weights}: layer {layer.name} does not fit ({exc})"
            ) from exc
