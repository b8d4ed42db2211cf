"""The model trains on a tiny transformed fixture and exports signatures that serve raw features."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from modules import features, trainer_module
from modules.transform_module import preprocessing_fn
from tests.conftest import (
    csv_row_to_example,
    csv_row_to_raw,
    curated_schema,
    predict_through_both_signatures,
    tensorboard_scalars,
)


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory, sample_rows):
    """A real transform graph and transformed rows from 300 rows of the data."""
    schema = curated_schema()
    raw = [csv_row_to_raw(row, schema) for row in sample_rows[:300]]
    output_dir = str(tmp_path_factory.mktemp("transform_output"))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_tmp")), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (
            raw,
            dataset_metadata.DatasetMetadata(schema),
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # The Transform component also records the raw schema, which serving parses requests with.
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema),
        os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR),
    )
    return tft.TFTransformOutput(output_dir), transformed


def _dataset(transformed, batch_size=32, repeat=True):
    columns = {key: np.array([row[key] for row in transformed]) for key in transformed[0]}
    labels = columns.pop(features.LABEL_KEY)
    dataset = tf.data.Dataset.from_tensor_slices((columns, labels))
    return (dataset.repeat() if repeat else dataset).batch(batch_size)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("model_run"))


@pytest.fixture(scope="module")
def trained_model(transform_output, log_dir):
    _, transformed = transform_output
    tf.keras.utils.set_random_seed(0)
    model = trainer_module.build_keras_model(hidden_units=[16, 8])
    initial = [w.copy() for w in model.get_weights()]
    history, rows = trainer_module.train(
        model,
        _dataset(transformed),
        _dataset(transformed, batch_size=100),
        train_steps=40,
        eval_steps=3,
        learning_rate=0.01,
        epochs=2,
        log_dir=log_dir,
    )
    assert rows == 40 * 32
    return model, initial, history


def test_one_hot_dense_is_a_dense_layer_over_one_hot_vectors():
    """Outputs and the gradients Adam is given equal those of Dense over the numbers and each id's one-hot
    vector, with the same kernel."""
    layer = trainer_module.OneHotDense(4, numbers=2, cardinalities={"a": 3, "b": 5})
    rng = np.random.default_rng(0)
    numbers = tf.constant(rng.normal(size=(6, 2)), tf.float32)
    ids = [tf.constant([0, 2, 1, 1, 0, 2], tf.int64), tf.constant([4, 0, 3, 3, 1, 0], tf.int64)]
    weights = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    layer((numbers, ids))
    layer.bias.assign(rng.normal(size=4))
    with tf.GradientTape(persistent=True) as tape:
        ours = layer((numbers, ids))
        inputs = tf.concat([numbers, tf.one_hot(ids[0], 3), tf.one_hot(ids[1], 5)], axis=1)
        dense = tf.nn.relu(tf.matmul(inputs, layer.kernel) + layer.bias)
        our_loss, dense_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(dense * weights)
    np.testing.assert_allclose(ours.numpy(), dense.numpy(), rtol=1e-6, atol=1e-6)
    assert float(tf.reduce_min(ours)) == 0.0  # the ReLU cut something: both sides of it are compared
    for ours_gradient, dense_gradient in zip(
        tape.gradient(our_loss, layer.trainable_variables), tape.gradient(dense_loss, layer.trainable_variables)
    ):
        np.testing.assert_allclose(tf.convert_to_tensor(ours_gradient).numpy(), dense_gradient.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("bad_id", [3, -1])
def test_one_hot_dense_refuses_an_id_out_of_its_range(bad_id, traced):
    """As a one-hot encoding does, instead of adding a row of the next feature's ids: run eagerly and in
    a traced function, as training and the serving signatures run it."""
    layer = trainer_module.OneHotDense(4, numbers=1, cardinalities={"a": 3, "b": 5})
    call = tf.function(layer, autograph=False) if traced else layer
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a: an id out of \[0, 3\)"):
        call((tf.zeros((2, 1)), [tf.constant([0, bad_id], tf.int64), tf.constant([0, 0], tf.int64)]))
    assert call((tf.zeros((2, 1)), [tf.constant([0, 2], tf.int64), tf.constant([4, 0], tf.int64)])).shape == (2, 4)


def test_without_steps_each_epoch_is_one_pass_over_every_row(transform_output):
    """The full scale: train_steps None, the dataset ends, and each epoch reads it once."""
    _, transformed = transform_output
    model = trainer_module.build_keras_model(hidden_units=[8])
    history, rows = trainer_module.train(
        model,
        _dataset(transformed, batch_size=64, repeat=False),
        _dataset(transformed, batch_size=100),
        train_steps=None,
        eval_steps=1,
        learning_rate=0.01,
        epochs=2,
    )
    assert rows == 2 * len(transformed) == 600
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("batch_size", [32, trainer_module.READ_ROWS + 1])
def test_batches_are_the_rows_through_the_transform_graph(tmp_path, sample_rows, transform_output, batch_size):
    """Batches smaller than READ_ROWS are cut from transformed ones: each the size asked (the last one
    what is left), every row once, each as the transform graph makes it (TFT's own transform of the rows)."""
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx_bsl.public import tfxio

    tf_transform_output, transformed = transform_output
    schema = curated_schema()
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for row in sample_rows[:300]:
            writer.write(csv_row_to_example(row, schema))
    accessor = DataAccessor(
        tf_dataset_factory=lambda patterns, options, raw_schema: tfxio.TFExampleRecord(
            patterns, schema=raw_schema
        ).TensorFlowDataset(options),
        record_batch_factory=None,
        data_view_decode_fn=None,
    )
    batches = list(trainer_module._dataset([path], accessor, tf_transform_output, batch_size, num_epochs=1))
    sizes = [len(labels) for _, labels in batches]
    assert sizes == [batch_size] * (300 // batch_size) + ([300 % batch_size] if 300 % batch_size else [])
    names = sorted(batches[0][0])

    def rows(columns):
        return sorted(zip(*(np.round(np.asarray(columns[name], np.float64), 4).tolist() for name in names)))

    ours = rows({name: np.concatenate([b[0][name].numpy() for b in batches]) for name in names})
    assert ours == rows({name: [row[name] for row in transformed] for name in names})
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(labels.tolist()) == sorted(row[features.LABEL_KEY] for row in transformed)


def test_each_epoch_is_validated_on_the_same_eval_rows(transform_output):
    """The eval batches are read once: a model that does not change scores the same after every epoch."""
    _, transformed = transform_output
    model = trainer_module.build_keras_model(hidden_units=[8])
    history, _ = trainer_module.train(
        model,
        _dataset(transformed, batch_size=64),
        _dataset(transformed, batch_size=50).shuffle(300),
        train_steps=3,
        eval_steps=2,
        learning_rate=0.0,
        epochs=3,
    )
    assert len(set(history["val_loss"])) == 1 and len(set(history["val_auc"])) == 1


def test_model_takes_every_transformed_feature(trained_model):
    model, _, _ = trained_model
    expected = {features.transformed_name(key) for key in features.MODEL_FEATURE_KEYS}
    assert set(model.input_names) == expected


def test_a_few_steps_train_the_weights(trained_model, transform_output):
    model, initial, history = trained_model
    _, transformed = transform_output
    assert len(history["loss"]) == len(history["val_loss"]) == len(history["val_auc"]) == 2
    assert np.isfinite(history["loss"]).all()
    assert history["loss"][1] < history["loss"][0]
    assert any(not np.allclose(a, b) for a, b in zip(initial, model.get_weights()))
    batch, labels = next(iter(_dataset(transformed, batch_size=300)))
    probabilities = model(batch).numpy()
    assert probabilities.shape == (300, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    # Trained on these rows, the model ranks them better than chance.
    assert trainer_module.roc_auc(labels.numpy(), probabilities) > 0.7


def test_tensorboard_logs_hold_each_epochs_scalars(trained_model, log_dir):
    _, _, history = trained_model
    assert history["learning_rate"] == pytest.approx([0.01, 0.01])
    scalars = tensorboard_scalars(log_dir)
    expected = {
        ("train", "epoch_loss"): history["loss"],
        ("train", "epoch_learning_rate"): history["learning_rate"],
        ("validation", "epoch_loss"): history["val_loss"],
        ("validation", "epoch_auc"): history["val_auc"],
    }
    assert set(scalars) == set(expected)
    for key, values in expected.items():
        assert [step for step, _ in scalars[key]] == [0, 1], key
        assert [value for _, value in scalars[key]] == pytest.approx(values, rel=1e-6), key
    # Scalars only: no graph, histograms or profile were written.
    assert sorted(os.listdir(log_dir)) == ["train", "validation"]


def test_roc_auc_matches_hand_computed_values():
    assert trainer_module.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert trainer_module.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert trainer_module.roc_auc([1, 0, 1], [0.9, 0.2, 0.8]) == pytest.approx(1.0)
    assert np.isnan(trainer_module.roc_auc([1, 1], [0.2, 0.3]))


def test_exported_signatures_agree_on_raw_rows(trained_model, transform_output, tmp_path, sample_rows):
    model, _, _ = trained_model
    tf_transform_output, _ = transform_output
    export_dir = str(tmp_path / "model")
    trainer_module.export_serving_model(model, tf_transform_output, export_dir)
    loaded = tf.saved_model.load(export_dir)
    assert {
        trainer_module.SERVING_SIGNATURE,
        trainer_module.RAW_FEATURES_SIGNATURE,
        trainer_module.TRANSFORM_SIGNATURE,
    } <= set(loaded.signatures)

    rows = sample_rows[300:340]  # rows the transform never saw, some with empty cells
    assert any(value == "" for row in rows for value in row.values())
    from_examples, from_raw = predict_through_both_signatures(loaded, rows)
    assert from_examples.shape == (40, 1)
    np.testing.assert_allclose(from_examples, from_raw, rtol=1e-5, atol=1e-6)

    schema = curated_schema()
    # The transform signature, which the Evaluator uses, computes the label from tips.
    with_tips = tf.constant([csv_row_to_example(row, schema) for row in rows])
    labels = loaded.signatures[trainer_module.TRANSFORM_SIGNATURE](examples=with_tips)[features.LABEL_KEY]
    expected = [int(float(r["tips"]) > 0.2 * float(r["fare"])) for r in rows]
    assert labels.numpy().reshape(-1).tolist() == expected
