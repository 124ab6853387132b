"""labelsieve.data: the Dataset container, embedded sets, file loaders and splits."""

from labelsieve.data.dataset import UNLABELED, Dataset
from labelsieve.data.embedded import EMBEDDED, load_breast_cancer, load_digits, load_waveform
from labelsieve.data.images import load_image_folder
from labelsieve.data.loaders import load_dataset
from labelsieve.data.splits import split_indices, train_test_split_dataset
from labelsieve.data.waveform import make_waveform

__all__ = [
    "EMBEDDED",
    "UNLABELED",
    "Dataset",
    "load_breast_cancer",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_waveform",
    "make_waveform",
    "split_indices",
    "train_test_split_dataset",
]
