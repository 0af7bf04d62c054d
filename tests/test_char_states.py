"""The GloVe encoder's character CNN over words end to end (`GloveEncoder._char_states`) against
the padded [words, characters] convolution it replaces, written out here as the reference."""

import numpy as np
import pytest
import torch

from models.encoders import GloveEncoder


def padded_reference(encoder, chars):
    """Max over each word's characters of the CNN on the padded rows (padding masked to -1e4)."""
    states = encoder.char_cnn(encoder.char_emb(chars).transpose(1, 2))
    return states.masked_fill((chars == 0).unsqueeze(1), -1e4).amax(-1)


@pytest.mark.parametrize("seed", range(6))
def test_end_to_end_words_give_the_padded_values(seed):
    torch.manual_seed(seed)
    encoder = GloveEncoder(np.zeros((10, 4), dtype=np.float32), n_chars=40, char_filters=7, char_dim=30,
                           hidden=8, layers=1).eval()
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        for width in (1, 2, 3, 8, 30):
            for n in (1, 2, 9, 300):
                lengths = torch.from_numpy(rng.integers(0, width + 1, n))
                lengths[0] = width
                chars = torch.from_numpy(rng.integers(2, 42, (n, width)))
                chars[torch.arange(width) >= lengths.unsqueeze(1)] = 0
                got = encoder._char_states(chars)
                assert torch.allclose(got, padded_reference(encoder, chars), rtol=0, atol=1e-5)
                assert (got[lengths == 0] == -1e4).all()  # a padding word, as the padded max gives it
