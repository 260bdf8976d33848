"""The training heads: a reversed gradient from a speaker head on the embedding; a run keeps its heads out of the model."""

import pytest
import torch

from emovox.config import load_config
from emovox.training.adversary import reverse_gradient
from emovox.training.heads import TrainingHeads
from emovox.training.batches import BatchMaker
from emovox.training.data import load_dataset
from emovox.training.trainer import bundle_from, make_optimizer, make_step


def test_the_reversal_passes_forward_and_turns_the_gradient_back():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_the_step_adds_the_speaker_loss_and_the_head_learns(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    maker = BatchMaker(data, tiny_config.preprocessing, 8, seed=1, speaker_labels=True)
    batch = next(iter(maker.epoch(0)))
    assert batch.speakers is not None and int(batch.speakers.max()) < 3  # the tiny corpus's 3 actors
    model = bundle_from(tiny_config, data.label_names).model.eval()  # one answer: no dropout
    adversary = TrainingHeads(model, n_speakers=3, adversary=0.3)
    extractor = tiny_config.preprocessing.extractor()
    x = extractor.finish(batch.windows)
    with torch.no_grad():
        logits, heads = adversary(x)
        speakers = heads["speaker"]
        assert torch.allclose(logits, model(x), atol=1e-5)  # the emotion answer is the network's own
        expected = (torch.nn.functional.cross_entropy(logits, batch.y)
                    + torch.nn.functional.cross_entropy(speakers, batch.speakers)).item()
    head = [p.detach().clone() for p in adversary.speaker_head.parameters()]
    step = make_step(extractor, bf16=False, label_smoothing=0.0, channels_last=False, heads=adversary)
    loss, _ = step(model, make_optimizer(tiny_config.training)(adversary), batch)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert all(not torch.equal(a, b) for a, b in zip(head, adversary.speaker_head.parameters()))


def test_the_network_learns_from_the_speaker_loss_reversed(tiny_config):
    model = bundle_from(tiny_config).model.eval()
    x = torch.randn(6, 1, 64, 40, generator=torch.Generator().manual_seed(2))
    who = torch.tensor([0, 1, 2, 0, 1, 2])

    def conv_grad(weight):
        adversary = TrainingHeads(model, n_speakers=3, adversary=weight)
        torch.manual_seed(0)
        adversary.speaker_head = torch.nn.Sequential(torch.nn.Linear(model.fc.in_features, 3))  # the same head each time
        model.zero_grad()
        torch.nn.functional.cross_entropy(adversary(x)[1]["speaker"], who).backward()
        return model.conv1.weight.grad.clone()

    g = conv_grad(0.5)
    assert g.abs().sum() > 0
    assert torch.allclose(conv_grad(-0.5), -g, atol=1e-6)  # the sign flips with the weight: reversed
    assert torch.allclose(conv_grad(1.0), 2 * g, atol=1e-6)  # and scales with it


@pytest.mark.parametrize("setting, head", [("training.speaker_adversary=0.1", "speaker_head."),
                                           ("training.intensity_head=0.3", "intensity_head.")])
def test_a_run_keeps_the_head_out_of_the_model_and_in_the_checkpoint(tiny_config, tmp_path, setting, head):
    from emovox.models.folder import load_bundle

    from .conftest import train_tiny

    cfg = tiny_config.override(setting, "training.epochs=1")
    data, _ = train_tiny(cfg, tmp_path / "run")
    plain = bundle_from(cfg, data.label_names).model.state_dict().keys()
    assert load_bundle(tmp_path / "run" / "best").model.state_dict().keys() == plain
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert any(k.startswith(head) for k in state["heads"])  # a resumed run gets its head back


@pytest.mark.parametrize("overrides, message", [
    (["training.speaker_adversary=-1"], "number >= 0"),
    (["training.speaker_adversary=0.1", "augment.mixup={alpha: 0.4}"], "does not combine"),
])
def test_adversary_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_the_adversary_refuses_the_functionals_model():
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "functionals-prosody.yaml"
    with pytest.raises(ValueError, match="has none"):
        load_config(config, ["training.speaker_adversary=0.1"])


def test_a_checkpoint_from_before_the_intensity_head_resumes_its_speaker_head(tiny_config):
    from emovox.training.trainer import checkpoint_heads

    model = bundle_from(tiny_config).model
    old = TrainingHeads(model, n_speakers=3, adversary=0.2)
    legacy = {"adversary": old.speaker_head.state_dict()}  # what checkpoints held before the heads module
    new = TrainingHeads(model, n_speakers=3, adversary=0.2)
    new.load_head_state(checkpoint_heads(legacy))
    assert all(torch.equal(a, b) for a, b in zip(old.speaker_head.parameters(), new.speaker_head.parameters()))
    assert checkpoint_heads({"heads": new.head_state(), "adversary": None}).keys() == new.head_state().keys()
    with pytest.raises(ValueError, match="holds no training heads"):
        checkpoint_heads({"heads": None, "adversary": None})
    with pytest.raises(ValueError, match="do not match"):  # an intensity head's weights into a speaker head
        new.load_head_state(TrainingHeads(model, intensity=0.3).head_state())
