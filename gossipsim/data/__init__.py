"""Datasets (synthetic, scikit-learn bundled, LIBSVM files) and their partition over nodes."""

from gossipsim.data.dataset import TASKS, DataError, Dataset
from gossipsim.data.libsvm import read_libsvm
from gossipsim.data.loaders import (
    DATASET_KINDS,
    load_dataset,
    standardize_features,
    train_test_split,
)
from gossipsim.data.partition import PARTITION_KINDS, partition, pseudo_labels

__all__ = [
    "DATASET_KINDS",
    "PARTITION_KINDS",
    "TASKS",
    "DataError",
    "Dataset",
    "load_dataset",
    "partition",
    "pseudo_labels",
    "read_libsvm",
    "standardize_features",
    "train_test_split",
]
