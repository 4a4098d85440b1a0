import torch

from archlab.models import build_model


def test_every_tiny_preset_runs_forward():
    torch.manual_seed(0)
    for name in ("gpt-tiny", "llama-tiny", "bert-tiny", "transformer-tiny"):
        model = build_model(name)
        x = torch.randint(0, model.cfg.vocab_size, (2, 12))
        kw = {"decoder_input_ids": x[:, :7]} if model.cfg.shape == "encoder_decoder" else {}
        out = model(x, **kw)
        assert out.shape == (2, 7 if kw else 12, model.cfg.vocab_size)
        assert torch.isfinite(out).all()
