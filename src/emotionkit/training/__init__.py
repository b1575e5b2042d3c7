"""Training and evaluation: datasets, architectures, the :class:`Trainer` and metrics.

Importing this package does not import Keras; building or training a model does.
"""

from __future__ import annotations

from .architectures import (
    Architecture,
    build_model,
    get_architecture,
    list_architectures,
    register_architecture,
)
from .datasets import (
    FERPLUS_LABELS,
    DatasetError,
    Fer2013Csv,
    FolderDataset,
    ImageData,
    LabelledDataset,
    canonical_label,
    match_labels,
    open_dataset,
)
from .evaluation import (
    EvaluationReport,
    evaluate_classifier,
    evaluate_predictions,
    supports_tta,
)

__all__ = [
    "FERPLUS_LABELS",
    "Architecture",
    "DatasetError",
    "EvaluationReport",
    "Fer2013Csv",
    "FolderDataset",
    "ImageData",
    "LabelledDataset",
    "Trainer",
    "TrainingError",
    "TransferTrainer",
    "build_model",
    "canonical_label",
    "evaluate_classifier",
    "evaluate_predictions",
    "get_architecture",
    "list_architectures",
    "match_labels",
    "open_dataset",
    "register_architecture",
    "supports_tta",
]


def __getattr__(name: str) -> object:
    # The trainer's callbacks subclass keras.callbacks.Callback: import it on first use.
    if name in ("Trainer", "TrainingError"):
        from . import trainer

        return getattr(trainer, name)
    if name == "TransferTrainer":
        from .transfer import TransferTrainer

        return TransferTrainer
    raise AttributeError(name)
