"""Edge export: the full policy (CNN + recurrent core) as a single-step ONNX model.

``lnn_control.export.onnx.export_onnx`` writes the model (needs torch);
``lnn_control.export.onnx_policy.OnnxPolicy`` runs it with only onnxruntime and NumPy.
"""
