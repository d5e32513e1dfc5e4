"""The backbone's per-layer pooled features."""

from __future__ import annotations

import pytest
import torch

from workers.engine.detector import EncoderError, load_encoder
from workers.engine.detector.encoder import default_encoder_path


def test_features_are_per_layer_unit_vectors(encoder):
    layers = encoder.resolve_layers(None)
    features = encoder.layer_features(["Where does Orla live?", "What is the capital of France?"], layers)
    assert layers == (1, 2, 3, 4, 5, 6)
    assert features.shape == (2, 6, 384)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(2, 6))


def test_pooling_ignores_padding_and_batch_order(encoder):
    short = "Where does Orla live?"
    alone = encoder.layer_features([short], (3, 6))
    with_longer = encoder.layer_features(["A much longer sentence that forces padding " * 5, short], (3, 6), batch_size=2)
    torch.testing.assert_close(with_longer[1], alone[0], atol=1e-5, rtol=1e-5)


def test_layer_selection_counts_negative_indices_from_the_end(encoder):
    assert encoder.resolve_layers((-1,)) == (6,)
    assert encoder.resolve_layers((0, -2)) == (0, 5)
    with pytest.raises(EncoderError):
        encoder.resolve_layers((7,))


def test_last_layer_matches_the_sentence_transformers_embedding(encoder):
    from sentence_transformers import SentenceTransformer

    texts = ["Where does Orla live?", "Bake bread at 220 degrees."]
    reference = SentenceTransformer(str(default_encoder_path()), device="cpu").encode(texts, convert_to_tensor=True)
    ours = encoder.layer_features(texts, encoder.resolve_layers((-1,)))[:, 0]
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-4, rtol=1e-4)


def test_a_directory_without_config_is_refused(tmp_path):
    with pytest.raises(EncoderError):
        load_encoder(tmp_path)
