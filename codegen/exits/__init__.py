"""Early exits for any ONNX classifier: place them, train their heads on frozen features, calibrate
their thresholds, and write a bundle (``edgesplit add-exits``; the procedure is in ``build.py``)."""
