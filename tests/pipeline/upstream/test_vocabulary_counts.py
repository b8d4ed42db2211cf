"""TFT's unweighted vocabularies counted a batch at a time give TFT's own vocabulary files, byte for byte:
tokens in the same order (count, then token, for ties), the same counts, the same top_k and frequency
cut-offs, over strings and integers, one and several tokens a row, many batches."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform import analyzer_nodes
from tensorflow_transform.beam import common
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from pipeline.upstream import vocabulary_counts


def _installed() -> type:
    implementation, _ = common._PTRANSFORM_BY_OPERATION_DEF_SUBCLASS[  # pylint: disable=protected-access
        analyzer_nodes.VocabularyAccumulate
    ].get_ptransform(None)
    return implementation


@pytest.fixture
def stock_then_ours():
    """Yields a function that registers TFT's implementation (False) or ours (True); ours stays after."""

    def use(ours: bool) -> None:
        if ours:
            vocabulary_counts.install()
        else:
            common.register_ptransform(analyzer_nodes.VocabularyAccumulate)(vocabulary_counts._STOCK)
        assert _installed() is (vocabulary_counts.VocabularyAccumulate if ours else vocabulary_counts._STOCK)

    yield use
    vocabulary_counts.install()


def _rows(count: int) -> list[dict]:
    rng = random.Random(7)
    # Skewed frequencies with ties, a token with a newline (TFT filters it from text files), empty strings.
    words = [f"w{i}" for i in range(40)] + ["", "two\nlines"]
    weights = [1 + (i % 9) ** 2 for i in range(len(words))]
    return [
        {
            "word": rng.choices(words, weights)[0],
            "number": rng.choice([3, 3, 3, 5, 5, 7, 11, 2**40, -4]),
            "tags": rng.sample(words[:14], rng.randint(0, 4)),
        }
        for _ in range(count)
    ]


_SPEC = {
    "word": tf.io.FixedLenFeature([], tf.string),
    "number": tf.io.FixedLenFeature([], tf.int64),
    "tags": tf.io.VarLenFeature(tf.string),
}


def _preprocessing_fn(inputs):
    return {
        "word": tft.compute_and_apply_vocabulary(
            inputs["word"], frequency_threshold=30, store_frequency=True, vocab_filename="word"
        ),
        "number": tft.compute_and_apply_vocabulary(inputs["number"], store_frequency=True, vocab_filename="number"),
        "tags": tft.compute_and_apply_vocabulary(inputs["tags"], top_k=9, store_frequency=True, vocab_filename="tags"),
    }


def _vocabularies(rows: list[dict], directory: Path) -> dict[str, bytes]:
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_SPEC))
    with tft_beam.Context(temp_dir=str(directory / "tmp"), desired_batch_size=64, force_tf_compat_v1=True):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(_preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(directory / "out"))
    assets = directory / "out" / "transform_fn" / "assets"
    return {path.name: path.read_bytes() for path in sorted(assets.iterdir())}


def test_the_vocabulary_files_are_tfts(tmp_path, stock_then_ours):
    rows = _rows(3000)
    stock_then_ours(False)
    expected = _vocabularies(rows, tmp_path / "stock")
    stock_then_ours(True)
    assert _vocabularies(rows, tmp_path / "ours") == expected
    assert sorted(expected) == ["number", "tags", "word"]
    # The files hold what they should: the counts of the whole input, most frequent first.
    words = collections.Counter(row["word"] for row in rows if "\n" not in row["word"] and row["word"])
    assert expected["word"].decode().splitlines() == [f"{n} {w}" for w, n in _by_count(words) if n >= 30]
    assert 0 < sum(n < 30 for n in words.values()) < len(words)
    tags = collections.Counter(tag for row in rows for tag in row["tags"])
    assert expected["tags"].decode().splitlines() == [f"{n} {w}" for w, n in _by_count(tags)[:9]]
    numbers = collections.Counter(row["number"] for row in rows)
    assert sorted(expected["number"].decode().splitlines()) == sorted(f"{n} {v}" for v, n in numbers.items())


def _by_count(counts: collections.Counter) -> list[tuple[str, int]]:
    """TFT's order: by count, ties by token, both descending."""
    return sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def test_a_batch_is_counted_once_per_token():
    batch = np.array([b"a", b"b", b"a", b"", b"a"], dtype=object)
    assert sorted(vocabulary_counts.count_tokens((batch,))) == [(b"", 1), (b"a", 3), (b"b", 1)]
    numbers = np.array([5, 2**40, 5], dtype=np.int64)
    counted = dict(vocabulary_counts.count_tokens((numbers,)))
    assert counted == {5: 2, 2**40: 1} and all(type(token) is int for token in counted)
    assert list(vocabulary_counts.count_tokens((np.array([], dtype=object),))) == []
