"""Speaker-centred training: learn the answers that speaker adaptation will judge.

At prediction a speaker's clips can be judged against that speaker's mean answer
(:mod:`emovox.adaptation`: softmax(log p - the speaker's mean log p)). A network trained on
clips one at a time has to spend capacity on making each voice, microphone and room answer
alike; one trained on the centred answers is told that a shift shared by all of a speaker's
clips will be removed, and can spend it on what differs between them. Each batch holds groups
of clips of one speaker, whole runs of ``speaker_groups`` clips (:class:`emovox.training.batches.BatchMaker`);
every answer is also centred on its group's mean log-probability, with the floor inference uses,
and the loss blends the two cross-entropies, the centred one's share ``training.centred_weight``
(default half) and the clip's own the rest. The centred one alone (weight 1) leaves the answers'
shared level free (a shift shared by all clips cancels): measured, the network then answered
"neutral" for every clip on its own (test WA 6.7 %, the neutral share) while its centred answers
were right: a model for speaker-adaptive use only. Its epochs, temperature and validation
confusion are chosen, fitted and drawn on the adapted validation answers.
"""

from __future__ import annotations

import math

import torch

from ..adaptation import FLOOR


def centre_by_group(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``logits`` ``[B, C]`` as log-probabilities minus their group's mean log-probability
    (``groups[i]``: clip ``i``'s group, small non-negative integers); the result is the logits
    of :func:`emovox.adaptation.centre_answers`' answer. A group of one clip comes out uniform."""
    logp = torch.log_softmax(logits, 1).clamp_min(math.log(FLOOR))
    n = int(groups.max()) + 1
    sums = torch.zeros(n, logp.shape[1], dtype=logp.dtype).index_add_(0, groups, logp)
    counts = torch.bincount(groups, minlength=n).clamp_min(1).to(logp.dtype)
    return logp - (sums / counts[:, None])[groups]
