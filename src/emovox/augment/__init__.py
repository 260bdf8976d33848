"""Training-time augmentation: of waveforms (:mod:`.waveform`: voices, rooms, microphones,
codecs) and of feature windows (:mod:`.spectral`: SpecAugment, mixup). One small class each."""

from .spectral import AUGMENTATIONS, Compose, Mixup, SpecAugment, from_config, mixup_from_config
from .waveform import (WAVE_AUGMENTATIONS, Babble, Band, Chain, Clipping, Codec, Equaliser, Gain, Noise,
                       PitchShift, Reverb, Speed, Telephone, WaveAugmentation, chain_from_config, codec_roundtrip, coloured_noise,
                       room_impulse_responses)

__all__ = ["AUGMENTATIONS", "Compose", "Mixup", "SpecAugment", "from_config", "mixup_from_config",
           "WAVE_AUGMENTATIONS", "Babble", "Band", "Chain", "Clipping", "Codec", "Equaliser", "Gain", "Noise", "PitchShift", "Reverb", "Speed",
           "Telephone", "WaveAugmentation", "chain_from_config", "codec_roundtrip", "coloured_noise",
           "room_impulse_responses"]
