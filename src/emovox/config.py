"""Run configurations: typed sections, read from YAML recipes with ``a.b=value`` overrides.

Every hyper-parameter has its one default here (the preprocessing's in
:class:`~emovox.pipeline.Preprocessing`) or is set in ``configs/*.yaml``; nothing is hard-coded
in the loop. A run folder keeps the resolved configuration as ``config.yaml``: the nested mapping
of :meth:`RunConfig.to_dict`, the same sections and keys a run folder has always held.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .features import FeatureConfig
from .pipeline import Preprocessing


@dataclass(frozen=True)
class DataConfig:
    """The training data.

    ``corpus``: a corpus name, or a list of ``NAME`` / ``NAME=DIR`` trained on together;
    ``root``: the folder of a single named corpus (default: its usual place);
    ``test_corpora``: the corpora validated and tested on (default: all of them);
    ``cache_dir``: the feature cache (default ``$EMOVOX_CACHE`` or ``~/.cache/emovox/features``);
    ``labels``: the model's emotions, ``all`` (emovox's 8), ``union`` or ``intersection`` of the
    corpora's.
    """

    corpus: str | list = "ravdess"
    root: str | None = None
    test_corpora: str | list | None = None
    cache_dir: str | None = None
    labels: str = "all"


@dataclass(frozen=True)
class ModelConfig:
    """The network: a registry ``name``, its ``width``, ``dropout`` and ``pooling`` over the last
    maps (:data:`emovox.models.resnet.POOLINGS`), and ``pretrained``, a torchvision ResNet18
    state-dict file to start from (``None``: from scratch)."""

    name: str = "resnet18"
    width: int = 32
    dropout: float = 0.2
    pooling: str = "avg"
    pretrained: str | None = None

    @property
    def options(self) -> dict:
        """The keyword arguments of the registry's builder (everything but the name and the weights;
        ``pooling`` only when it is not the default, so earlier model folders read as they were)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("name", "pretrained") and not (k == "pooling" and v == "avg")}


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation: AdamW under Smith's one-cycle policy, selection on validation speakers."""

    epochs: int = 40
    batch_size: int = 32
    max_lr: float | str = 3.0e-3   # a number, or "auto": run the LR range test first and use its bounds
    div_factor: float = 25.0       # one-cycle starts at max_lr / div_factor
    final_div_factor: float = 1.0e4
    pct_start: float = 0.3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    bf16: bool = True              # bf16 autocast on CPUs that support it; fp32 otherwise
    channels_last: bool = True
    val_speakers: int = 4          # validation speakers drawn from the training speakers (0: none)
    select_on: str = "val_ua"      # model selection metric on the validation speakers
    balance: str = "none"          # none | sampler (classes drawn equally often) | loss (inverse-frequency weights)
    speaker_p: float = 0.0         # "bins" normalisation: chance a clip uses its speaker's statistics, not its own
    cv_folds: int = 0              # functionals model: choose C by grouped k-fold over the training speakers (0: on the validation speakers)
    c_grid: list | None = None     # functionals model: the L2 strengths C tried (None: emovox's grid; one value: C fixed, no search)
    copies: int = 0                # functionals model: augmented copies of each training clip (augment.wave), each speaker's k-th copy degraded alike
    distill: dict | None = None    # networks: {teachers: [folders], weight: 0.5, temperature: 2.0} (emovox.training.distill)
    speaker_groups: int = 0        # networks: batches of runs of this many clips of one speaker, each answer's loss also taken centred on its speaker's mean answer in the batch, epochs chosen on speaker-adaptive validation (emovox.training.centring; 0: off)
    speaker_adversary: float = 0.0 # networks: a head guesses the training speaker from the embedding, its gradient reversed × this into the network (emovox.training.adversary; 0: off)
    centred_weight: float = 0.5    # with speaker_groups: the centred answers' share of the loss, the rest the clips' own (1: centred only, answers on their own untrained)
    intensity_head: float = 0.0    # networks: a head guesses each clip's intensity (RAVDESS normal / strong) from the embedding, × this in the loss; clips without one are left out (emovox.training.heads; 0: off)
    mixstyle: float = 0.0          # networks (resnet): chance per batch that the first two stages' per-channel statistics are blended between clips (MixStyle: emovox.training.mixstyle; 0: off)
    mixstyle_on: str = "stages"    # where MixStyle mixes: stages (per channel after the first two stages) | bins (Freq-MixStyle: per frequency bin of the input)
    consistency: float = 0.0       # networks with augment.wave: each clip also clean, + this × JS divergence of the two answers (emovox.training.consistency; 0: off)


@dataclass(frozen=True)
class LrFindConfig:
    """Smith's LR range test: ``steps`` batches, the LR rising exponentially between the bounds."""

    start_lr: float = 1.0e-6
    end_lr: float = 1.0
    steps: int = 100


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, ``None`` = off (see :mod:`emovox.augment`): of the feature
    windows (``spec_augment``, ``mixup``: their options) and of the waveforms (``wave``:
    ``{speed: {p: ...}, reverb: ..., noise: ..., codec: ..., ...}``)."""

    spec_augment: dict | None = None
    mixup: dict | None = None
    wave: dict | None = None


@dataclass(frozen=True)
class RunConfig:
    """A training run's settings: top-level ``name``, ``seed``, ``threads`` (torch threads)
    and one section each for data, preprocessing, model, training, lr_find and augment."""

    name: str = "resnet18-mel"
    seed: int = 0
    threads: int = 2
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    lr_find: LrFindConfig = field(default_factory=LrFindConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        """The nested mapping a run folder's ``config.yaml`` and a results file's ``config`` hold."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The defaults updated with ``d`` (all of a config or any part of it), checked."""
        return cls().merged(d)

    def merged(self, update: dict, where: str = "") -> "RunConfig":
        """A copy with the values of the nested mapping ``update``: a section's keys are merged
        into it (the others keep their values); an unknown key is an error naming it."""
        return _merge(self, update, where)

    def check(self) -> "RunConfig":
        """The settings that only make sense together (each section checks its own keys)."""
        feats = self.preprocessing.features
        if self.model.name == "functionals" and (feats.normalize != "none" or feats.deltas):
            raise ValueError("the functionals model standardises its own statistics: set preprocessing.features."
                             f"normalize: none and deltas: false (got {feats.normalize!r}, {feats.deltas})")
        extra_rows = [k for k in ("pitch", "append_mfcc") if getattr(feats, k)]
        if self.model.name != "functionals" and extra_rows:
            raise ValueError(f"preprocessing.features.{extra_rows[0]} adds rows that only the functionals model "
                             f"reads; model {self.model.name!r} takes one spectral image")
        augment = [k for k, v in dataclasses.asdict(self.augment).items() if v]
        copies = self.training.copies
        _require_number("training.copies", copies, "a whole number >= 0", whole=True)
        if self.model.name == "functionals":  # its fit reads whole clips, not random windows
            windowed = [k for k in augment if k != "wave"]
            if windowed:
                raise ValueError(f"the functionals model judges whole clips: augment.{windowed[0]} (of windows) "
                                 "is not supported; augment.wave with training.copies is")
            if bool(copies) != bool(self.augment.wave):
                raise ValueError("the functionals model takes waveform augmentation as augmented copies of its "
                                 "training clips: set both augment.wave and training.copies (>= 1), or neither")
        elif copies:
            raise ValueError("training.copies is the functionals model's; networks augment every batch afresh")
        if self.model.name != "functionals" and self.training.cv_folds:
            raise ValueError("training.cv_folds chooses the functionals model's C; networks select on validation speakers")
        if self.training.distill is not None:
            from .training.distill import Distillation

            if self.model.name == "functionals":
                raise ValueError("training.distill trains a network on its teachers' soft targets; the functionals "
                                 "model is a convex fit on the labels")
            Distillation.from_config(self.training.distill)
        if self.augment.wave:
            from .augment.waveform import check_wave_config

            check_wave_config(self.augment.wave)
        if self.augment.spec_augment or self.augment.mixup:  # cheap to build: built once to check the options
            from .augment import from_config, mixup_from_config

            options = dataclasses.asdict(self.augment)
            try:
                from_config(options), mixup_from_config(options)
            except TypeError as err:
                raise ValueError(f"augment: {err}") from None
        weight = self.training.consistency
        _require_number("training.consistency", weight)
        if weight > 0:
            if self.model.name == "functionals" or not self.augment.wave:
                raise ValueError("training.consistency compares a network's answers on clean and augmented audio: "
                                 "it needs augment.wave and a network model")
            if self.augment.mixup or self.training.speaker_p or self.training.distill:
                raise ValueError("training.consistency does not combine with augment.mixup, training.speaker_p "
                                 "or training.distill")
        adversary = self.training.speaker_adversary
        _require_number("training.speaker_adversary", adversary)
        if adversary and self.model.name == "functionals":
            raise ValueError("training.speaker_adversary trains a network's embedding; the functionals model has none")
        if adversary and self.augment.mixup:
            raise ValueError("training.speaker_adversary does not combine with augment.mixup (a blend of two speakers)")
        intensity = self.training.intensity_head
        _require_number("training.intensity_head", intensity)
        if intensity and (self.model.name == "functionals" or self.augment.mixup):
            raise ValueError("training.intensity_head trains a network's embedding on unblended clips: not with the "
                             "functionals model or augment.mixup")
        mix = self.training.mixstyle
        _require_number("training.mixstyle", mix, "a chance in [0, 1]", ok=lambda v: 0 <= v <= 1)
        if mix and self.model.name != "resnet18":
            raise ValueError("training.mixstyle mixes a ResNet's statistics: model.name must be resnet18")
        from .training.mixstyle import check_place

        check_place(self.training.mixstyle_on)
        from .models.resnet import check_pooling

        try:
            check_pooling(self.model.pooling, self.model.name)
        except ValueError as err:
            raise ValueError(f"model.{err}") from None
        groups = self.training.speaker_groups
        _require_number("training.speaker_groups", groups, "0 (off) or a whole number >= 2", whole=True,
                        ok=lambda g: g == 0 or g >= 2)
        weight = self.training.centred_weight
        _require_number("training.centred_weight", weight, "a number in (0, 1]", ok=lambda w: 0 < w <= 1)
        if weight != 0.5 and not groups:
            raise ValueError("training.centred_weight weighs speaker-centred training: set training.speaker_groups too")
        if groups and self.training.batch_size % groups:
            raise ValueError(f"training.batch_size ({self.training.batch_size}) must be a multiple of "
                             f"training.speaker_groups ({groups}): batches hold whole speaker groups")
        if groups:
            if self.model.name == "functionals":
                raise ValueError("training.speaker_groups trains a network's answers; the functionals model "
                                 "takes its speakers' statistics instead")
            if self.augment.mixup or self.training.balance == "sampler" or self.training.distill:
                raise ValueError("training.speaker_groups does not combine with augment.mixup, "
                                 "training.balance=sampler or training.distill")
        grid = self.training.c_grid
        if grid is not None:
            if self.model.name != "functionals":
                raise ValueError("training.c_grid lists the functionals model's C; networks have no C")
            if (not isinstance(grid, list) or not grid
                    or not all(_is_number(c) and c > 0 for c in grid)):
                raise ValueError(f"training.c_grid must be a list of positive numbers, got {grid!r}")
        return self

    def override(self, *texts: str) -> "RunConfig":
        """A copy with ``section.key=value`` overrides applied in order (values parsed as YAML)."""
        cfg = self
        for text in texts:
            cfg = cfg.merged(parse_override(text))
        return cfg


def _merge(obj, update, where: str):
    """``obj`` (a settings dataclass, or a mapping value such as ``augment.wave``) with the
    values of ``update``, each checked; sections and mappings merge key by key."""
    if not isinstance(update, dict):
        raise ValueError(f"config key {where.rstrip('.')!r} must be a mapping")
    is_settings = dataclasses.is_dataclass(obj)
    names = {f.name for f in dataclasses.fields(obj)} if is_settings else set(obj)
    changes = {}
    for key, value in update.items():
        if key not in names:
            if is_settings:
                raise ValueError(f"unknown config key {where + key!r}")
            changes[key] = value  # a new entry of a free-form mapping: its consumer checks it (RunConfig.check)
            continue
        current = getattr(obj, key) if is_settings else obj[key]
        if isinstance(current, FeatureConfig):  # its own checks name bad settings and values
            if not isinstance(value, dict):
                raise ValueError(f"config key {where + key!r} must be a mapping")
            changes[key] = FeatureConfig.from_dict({**current.to_dict(), **value})
        elif dataclasses.is_dataclass(current) or isinstance(current, dict):
            changes[key] = _merge(current, value, f"{where}{key}.")
        else:
            _check_type(where + key, current, value)
            changes[key] = value
    return dataclasses.replace(obj, **changes) if is_settings else {**obj, **changes}


def _is_number(value, whole: bool = False) -> bool:
    """An int (or float unless ``whole``) and not a bool (YAML's ``true`` is an int to Python)."""
    return isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)


def _require_number(name: str, value, what: str = "a number >= 0", whole: bool = False,
                    ok=lambda v: v >= 0) -> None:
    if not _is_number(value, whole) or not ok(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _check_type(name: str, default, value) -> None:
    """Numbers stay numbers and flags stay flags (``None`` defaults accept anything)."""
    if default is None or value is None:
        return
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"config key {name!r} must be true or false, not {value!r}")
    if _is_number(default):
        if name.endswith("max_lr") and value == "auto":
            return
        if not _is_number(value):
            raise ValueError(f"config key {name!r} must be a number, not {value!r}")


def parse_override(text: str) -> dict:
    """``"training.epochs=5"`` → ``{"training": {"epochs": 5}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    for part in reversed(path.strip().split(".")):
        value = {part: value}
    return value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Defaults, then the YAML file (a recipe or a run folder's ``config.yaml``), then each
    override, checked at every step."""
    cfg = RunConfig()
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping of sections (see configs/*.yaml)")
        cfg = cfg.merged(data)
    return cfg.override(*overrides).check()


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from .safeio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def differs_from_saved(cfg: RunConfig, path: str | Path) -> bool:
    """Whether the ``config.yaml`` at ``path`` holds settings other than ``cfg`` (a run is only
    continued with the settings it started with). Compared as settings, so a key added to
    emovox since, at its default, is no difference; a file this version cannot read is one."""
    try:
        return load_config(path) != cfg
    except ValueError:
        return True
