"""ONNX export of DeAOT's per-frame graphs and the ONNX Runtime engine (``--runtime onnx``)."""
