"""Training and export of the detector models (numpy only; `onnx` is needed to export)."""
