"""Exporting a finished text-classification run for use outside Protolab: ONNX (fp32, int8), a Hugging Face
folder, the TF-IDF skops file; each with a model card and its label list."""
