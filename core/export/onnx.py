"""Transformer and LSTM classifiers as ONNX graphs (dynamic batch and sequence axes), int8 by onnxruntime's
dynamic quantisation, and a classifier that serves such a graph with onnxruntime.

The TorchScript exporter (`dynamo=False`) is used, although torch 2.13 marks it deprecated: the default
torch.export-based one (`dynamo=True`) exported the BiLSTM with a dynamic sequence axis the first time in a
process and a fixed one (the example's length) the second time, so its graphs broke on longer texts. The
TorchScript one gives both families symbolic batch and sequence axes every time, matches PyTorch to ~1e-7
(MiniLM and the BiLSTM, at other batch sizes and lengths than the example) and takes a second, not five.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ProtolabError
from core.text.batching import pad_rows
from core.text.serving import TokenClassifier, inference_threads  # the same threads as the PyTorch path

MODEL_FILE = "model.onnx"
INFO_FILE = "protolab.json"  # what the folder holds: family, labels, max length, precision
INPUTS = ("input_ids", "attention_mask")
OPSET = 17


class OnnxExportError(ProtolabError):
    """A model that could not be exported to, or loaded from, ONNX."""


def export_onnx(classifier: TokenClassifier, path: Path) -> None:
    """Write `classifier`'s network as an ONNX graph: (input_ids, attention_mask) of shape (batch, sequence),
    both int64, to logits (batch, labels); both axes dynamic."""
    import torch

    class Logits(torch.nn.Module):  # the graph's one output: logits, not a transformers output object
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    model = classifier.model.float().to("cpu")
    wrapper = Logits(model).eval()  # eval on the wrapper: an exporter that toggles modes must find dropout off
    # Two rows of different lengths, so neither axis can be mistaken for a constant.
    enc = classifier.tokenizer(["an example text to trace the model with", "a shorter one"], padding=True,
                               return_tensors="pt")
    example = (enc["input_ids"], enc["attention_mask"])
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | {"logits": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            torch.onnx.export(wrapper, example, str(path), input_names=list(INPUTS), output_names=["logits"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    except Exception as exc:
        raise OnnxExportError(f"could not export the {classifier.family} model to ONNX "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''})") \
            from exc


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation (weights int8, activations quantised on the fly): no calibration data needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    except Exception as exc:
        raise OnnxExportError(f"could not quantise {source} to int8 ({type(exc).__name__}: {exc})") from exc


class OnnxClassifier(TokenClassifier):
    """A Transformer or LSTM served by onnxruntime on the CPU, with the same tokenising and length buckets."""

    def __init__(self, session: Any, tokenizer: Any, labels: list[str], max_length: int, family: str,
                 precision: str) -> None:
        super().__init__(session, tokenizer, labels, max_length, "cpu", family, precision)

    def _scoring(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()  # onnxruntime keeps no autograd state

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        input_ids, mask = pad_rows(rows, self.pad_id)
        return self.model.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})[0].astype(np.float64)


def write_info(folder: Path, *, family: str, labels: list[str], max_length: int, precision: str,
               run_id: int | None, **extra: Any) -> None:
    """protolab.json: what the folder holds, and `extra` facts of its kind (a multi-label run's thresholds)."""
    info = {"family": family, "labels": labels, "max_length": max_length, "precision": precision,
            "model_file": MODEL_FILE, "inputs": list(INPUTS), "output": "logits", "opset": OPSET, "run_id": run_id,
            **extra}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))


def load_onnx_folder(folder: Path) -> OnnxClassifier:
    """Load what an ONNX export wrote (model.onnx, protolab.json, the tokenizer files)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        info = json.loads((folder / INFO_FILE).read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = inference_threads(), 1
        session = ort.InferenceSession(str(folder / info.get("model_file", MODEL_FILE)), options,
                                       providers=["CPUExecutionProvider"])
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise OnnxExportError(f"{folder} does not hold a loadable ONNX export ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    return OnnxClassifier(session, tokenizer, [str(x) for x in info["labels"]], int(info["max_length"]),
                          str(info["family"]), str(info.get("precision", "fp32")))
