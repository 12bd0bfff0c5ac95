"""The one check of an array against a model's input, and of labels against images, that run, build-policy (train,
evaluate) and add-exits share: each names the file, the input and what to save instead."""
from types import SimpleNamespace

import numpy as np
import pytest

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import check_labels, check_model_input

SPEC = SimpleNamespace(name="image", shape=[None, 1, 28, 28], dtype="float32")


def test_an_array_the_input_reads_passes_whatever_its_batch():
    check_model_input(np.zeros((3, 1, 28, 28), np.float32), SPEC, "x.npy", "bundle b")
    check_model_input(np.zeros((0, 1, 28, 28), np.float32), SPEC, "x.npy", "bundle b")


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 28, 28, 1), np.float32),
     "x.npy: images of shape [4, 28, 28, 1], but the model reads 'image' of shape [None, 1, 28, 28] (batch first; "
     "None: any size): apply the model's preprocessing and save an array of shape (N, 1, 28, 28)"),
    (np.zeros((4, 784), np.float32), "x.npy: images of shape [4, 784], but the model reads 'image'"),
    (np.zeros((4, 1, 28, 28), np.uint8),
     "x.npy: images are uint8 but the model reads 'image' as float32: apply the model's preprocessing and convert "
     "them (np.asarray(x, 'float32'))"),
])
def test_an_array_of_another_shape_or_dtype_is_refused_naming_the_file_and_the_input(array, message):
    with pytest.raises(InputError) as refused:
        check_model_input(array, SPEC, "x.npy", "the model", "images")
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("labels, message", [
    (np.zeros((5, 1), np.int64), "y.npy: labels must be a 1-D integer array (one class index per image), got int64 [5, 1]"),
    (np.zeros(5, np.float32), "y.npy: labels must be a 1-D integer array"),
    (np.zeros(5, bool), "y.npy: labels must be a 1-D integer array"),
    (np.zeros(4, np.int64), "y.npy has 4 labels but x.npy has 5 images: one label per image"),
    (np.array([0, 1, 2, 3, 10]), "y.npy: labels run from 0 to 10 but the model has 10 classes (0..9)"),
])
def test_labels_that_cannot_be_the_images_are_refused_naming_the_labels_file(labels, message):
    with pytest.raises(InputError) as refused:
        check_labels(labels, 5, 10, "y.npy", "x.npy")
    assert str(refused.value).startswith(message)
    check_labels(np.arange(5, dtype=np.uint8), 5, 10, "y.npy", "x.npy")
    check_labels(np.array([0, 99]), 2, None, "y.npy", "x.npy")  # classes unknown: no range to check
