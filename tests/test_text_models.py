"""The LSTM classifier: shapes, padding masking, embedding init, safe save/load, and that it learns."""

from __future__ import annotations

import json

import pytest
import torch

from core.evaluation.metrics import classification_report
from core.text.lstm import LSTMConfig, LSTMLoadError, build_lstm, load_lstm, save_lstm
from core.text.pretrained import load_tokenizer, resolve_model_path
from tests.conftest import sentiment_frame, with_splits

SMALL = LSTMConfig(embed_dim=32, hidden_dim=32, dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def _batch(tokenizer, texts):
    return tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")


def test_forward_backward_shapes(tokenizer) -> None:
    model = build_lstm(tokenizer.vocab_size, 3, tokenizer.pad_token_id, SMALL)
    enc = _batch(tokenizer, ["a short one", "a somewhat longer text for the batch", "x"])
    out = model(**enc, labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3)
    assert out.loss is not None and out.loss.ndim == 0
    out.loss.backward()
    assert model.embedding.weight.grad is not None and model.classifier.weight.grad is not None
    assert model(**enc).loss is None  # no labels, no loss


@pytest.mark.parametrize("pooling", ["mean+max", "mean", "max", "last"])
def test_padding_does_not_change_logits(tokenizer, pooling: str) -> None:
    torch.manual_seed(0)
    model = build_lstm(tokenizer.vocab_size, 2, tokenizer.pad_token_id,
                       LSTMConfig(embed_dim=16, hidden_dim=16, pooling=pooling)).eval()
    alone = _batch(tokenizer, ["great product"])
    padded = _batch(tokenizer, ["great product", "a much much longer sentence that forces lots of padding"])
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1] + 5
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**padded).logits[0]
        # Extra padding at the end of the very same row must not matter either.
        ids = torch.nn.functional.pad(alone["input_ids"], (0, 10), value=tokenizer.pad_token_id)
        mask = torch.nn.functional.pad(alone["attention_mask"], (0, 10), value=0)
        c = model(input_ids=ids, attention_mask=mask).logits[0]
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, c, atol=1e-5)


def test_embeddings_initialised_from_bundled_model(tokenizer) -> None:
    from safetensors.torch import load_file

    folder = resolve_model_path(None)
    model = build_lstm(tokenizer.vocab_size, 2, tokenizer.pad_token_id, LSTMConfig(),
                       init_embeddings_from=folder)
    weights = load_file(f"{folder}/model.safetensors")
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    expected = weights[key].float()
    got = model.embedding.weight.detach()
    token = tokenizer.convert_tokens_to_ids("great")
    assert torch.equal(got[token], expected[token])
    assert torch.count_nonzero(got[tokenizer.pad_token_id]) == 0
    # A smaller LSTM gets a projection of the same embeddings (similar words stay similar).
    small = build_lstm(tokenizer.vocab_size, 2, tokenizer.pad_token_id, LSTMConfig(embed_dim=64),
                       init_embeddings_from=folder)
    assert small.embedding.weight.shape == (tokenizer.vocab_size, 64)
    emb = small.embedding.weight.detach()
    ids = tokenizer.convert_tokens_to_ids(["good", "great", "table"])
    cos = torch.nn.functional.cosine_similarity
    assert cos(emb[ids[0]], emb[ids[1]], dim=0) > cos(emb[ids[0]], emb[ids[2]], dim=0)


def test_save_load_round_trip(tokenizer, tmp_path) -> None:
    model = build_lstm(tokenizer.vocab_size, 2, tokenizer.pad_token_id, SMALL).eval()
    save_lstm(model, tmp_path / "lstm", tokenizer, labels=["negative", "positive"])
    assert not list((tmp_path / "lstm").glob("*.bin")) and not list((tmp_path / "lstm").glob("*.pkl"))
    config = json.loads((tmp_path / "lstm" / "config.json").read_text())
    assert config["vocab_size"] == tokenizer.vocab_size and config["lstm"]["hidden_dim"] == 32
    loaded, tok = load_lstm(tmp_path / "lstm")
    assert loaded.labels == ["negative", "positive"] and not loaded.training
    texts = ["i love it", "terrible and broken service today"]
    with torch.no_grad():
        assert torch.equal(model(**_batch(tokenizer, texts)).logits, loaded(**_batch(tok, texts)).logits)


def test_load_refuses_a_folder_without_a_model(tmp_path) -> None:
    with pytest.raises(LSTMLoadError):
        load_lstm(tmp_path)


def test_lstm_learns_tiny_data(tokenizer) -> None:
    torch.manual_seed(0)
    frame = with_splits(sentiment_frame(n=200, seed=3))
    train, val = frame[frame.split == "train"], frame[frame.split == "validation"]
    labels = sorted(frame.label.unique())
    y = torch.tensor([labels.index(x) for x in train.label])
    model = build_lstm(tokenizer.vocab_size, len(labels), tokenizer.pad_token_id, SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    texts = list(train.text)
    for _ in range(4):  # epochs
        perm = torch.randperm(len(texts))
        for start in range(0, len(texts), 16):
            idx = perm[start:start + 16]
            out = model(**_batch(tokenizer, [texts[i] for i in idx]), labels=y[idx])
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        pred = model(**_batch(tokenizer, list(val.text))).logits.argmax(-1).tolist()
    report = classification_report(list(val.label), [labels[i] for i in pred], labels)
    assert report["macro_f1"] > 0.85
