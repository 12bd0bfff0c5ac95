"""The embedded default model: a small branchy CNN for MNIST digits, trained and exported off-board.

``data`` loads and splits the images, ``model`` defines the network and its exit heads, ``train``
trains it jointly and measures it, ``export`` writes the ONNX files and the bundle, and ``command``
is ``edgesplit build-default --out DIR``, which runs the whole pipeline into DIR (``runtime/assets`` in a checkout).
"""

# Training defaults, here so the command can show them without importing torch.
DEFAULT_EPOCHS = 12
DEFAULT_SEED = 0
