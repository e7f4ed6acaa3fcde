"""What leaves Protolab: a finished text-classification run as ONNX (fp32, int8), a Hugging Face
folder or the TF-IDF skops file, each with a model card and its label list; and the HTML report of runs."""
