"""TFT's frequency vocabularies counted a batch at a time.

TFT 1.16 counts an unweighted vocabulary (`tft.vocabulary`, `tft.compute_and_apply_vocabulary` without
weights or labels) with Beam's `Count.PerElement` over every token of every row: one Beam element per
row and vocabulary, each through Beam's per-element machinery (a Map to a pair, the lifted combine's
table, the coder), which on a large input was a large share of Transform's time (bench/README.md). Here
each batch's tokens are counted first (`collections.Counter`, in C), and the
(token, count) pairs summed per token: the same counts, so the same vocabulary files, in a few thousand
elements. TFT's weighted and mutual-information vocabularies reduce each batch in the graph already and
are left to TFT.

The implementation is registered for TFT's `VocabularyAccumulate` node, which is how TFT's Beam
implementation finds it; the graph, the analyzers and their outputs are TFT's. Beam workers run
`count_tokens` by importing this module.
"""

from __future__ import annotations

import collections
from typing import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_transform import analyzer_nodes, analyzers
from tensorflow_transform.beam import analyzer_impls, common

_FREQUENCY = analyzers._VocabOrderingType.FREQUENCY  # pylint: disable=protected-access
_STOCK = analyzer_impls._VocabularyAccumulateImpl  # pylint: disable=protected-access


def count_tokens(batch_values: tuple[np.ndarray, ...]) -> Iterable[tuple[object, int]]:
    """(token, occurrences in the batch) pairs; tokens as TFT emits them (`tolist()`'s Python values)."""
    (batch_value,) = batch_values
    return collections.Counter(batch_value.tolist()).items()


class VocabularyAccumulate(_STOCK):
    """TFT's accumulation of a vocabulary's tokens; unweighted frequencies counted a batch at a time."""

    def expand(self, inputs):
        if self._vocab_ordering_type != _FREQUENCY:
            return super().expand(inputs)
        (pcoll,) = inputs
        return (
            pcoll
            | "FlattenTokensAndMaybeWeightsLabels" >> beam.FlatMap(count_tokens)
            | "CountPerToken"
            >> beam.CombinePerKey(sum).with_input_types(beam.typehints.Any).with_output_types(beam.typehints.Any)
        )


def install() -> None:
    """Makes TFT's Beam implementation use `VocabularyAccumulate`; calling it again changes nothing."""
    common.register_ptransform(analyzer_nodes.VocabularyAccumulate)(VocabularyAccumulate)
