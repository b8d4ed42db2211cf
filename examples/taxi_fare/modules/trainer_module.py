"""`run_fn` for the TFX Trainer: a small network over the z-scored trip features, one linear output, the
fare in dollars, saved with the signatures the pipeline's Evaluator and a serving client use.

The saved model embeds the transform graph: clients send the raw trip (tf.Examples) and get its fare.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402



def _sibling(name: str):
    """The module `name`.py beside this file (see transform_module.py: TFX never loads this file as part of
    its package)."""
    spec = importlib.util.spec_from_file_location(f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py"))
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


features = _sibling("features")

# Signature names in the pushed SavedModel: the pipeline evaluates through both.
SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"

DEFAULT_HYPERPARAMETERS = {"batch_size": 128, "hidden_units": [16, 8], "learning_rate": 0.01, "epochs": 1}


def build_keras_model(hidden_units: list[int]) -> tf.keras.Model:
    inputs = {
        features.transformed_name(key): tf.keras.layers.Input(
            shape=(), name=features.transformed_name(key), dtype=tf.float32
        )
        for key in features.FEATURE_KEYS
    }
    hidden = tf.keras.layers.concatenate([tf.keras.layers.Reshape((1,))(value) for value in inputs.values()])
    for units in hidden_units:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    output = tf.keras.layers.Reshape(())(tf.keras.layers.Dense(1, name="fare")(hidden))
    return tf.keras.Model(inputs=inputs, outputs=output)


# Rows read and transformed at a time; smaller batches are cut from the transformed ones, which costs far
# less than cutting raw examples (as the taxi task's module does).
READ_ROWS = 4096


def _dataset(file_pattern, data_accessor: DataAccessor, tf_transform_output, batch_size: int,
             num_epochs: int | None = None) -> tf.data.Dataset:
    """Batches of (transformed features, label), repeated without end: raw examples through the
    transform graph (Transform writes no transformed copy)."""
    raw = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=max(batch_size, READ_ROWS), num_epochs=num_epochs), tf_transform_output.raw_metadata.schema
    )
    transform_layer = tf_transform_output.transform_features_layer()

    @tf.autograph.experimental.do_not_convert
    def transform(raw_features):
        transformed = transform_layer(raw_features)
        return transformed, transformed.pop(features.LABEL_KEY)

    transformed = raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size < READ_ROWS:
        transformed = transformed.unbatch().batch(batch_size)
    return transformed.prefetch(tf.data.AUTOTUNE)


def train(model, train_dataset, eval_dataset, train_steps: int | None, eval_steps: int, learning_rate: float,
          epochs: int = 1, log_dir: str | None = None) -> dict[str, list[float]]:
    """Adam on the Huber loss (a few fares of hundreds of dollars would rule a squared error); after each
    epoch, loss and mean absolute error on eval, also written to TensorBoard logs in `log_dir` when given. A
    plain loop of tf.functions built without AutoGraph, as the other tasks': Model.fit's first AutoGraph
    conversion costs seconds."""
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    loss_fn = tf.keras.losses.Huber(delta=5.0)

    @tf.function(autograph=False)
    def train_step(batch, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(batch, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_mean_absolute_error": [], "learning_rate": []}
    writers = tensorboard_writers(log_dir) if log_dir else None
    # The same eval rows after every epoch, read once: epochs compare on equal terms.
    eval_batches = list(eval_dataset.take(eval_steps))
    # train_steps batches in all, from a dataset without end; None (the pipeline's full scale): each
    # epoch a whole pass over a dataset that ends.
    batches = iter(train_dataset) if train_steps is not None else None
    steps_per_epoch = max(1, (train_steps or 0) // epochs)
    for epoch in range(epochs):
        if batches is None:
            losses = [float(train_step(*batch)) for batch in train_dataset]
        else:
            steps = steps_per_epoch if epoch < epochs - 1 else train_steps - steps_per_epoch * epoch
            losses = [float(train_step(*next(batches))) for _ in range(steps)]
        labels, predictions = [], []
        for batch, label_batch in eval_batches:
            labels.append(label_batch.numpy().reshape(-1))
            predictions.append(model(batch, training=False).numpy().reshape(-1))
        labels, predictions = np.concatenate(labels), np.concatenate(predictions)
        history["loss"].append(float(np.mean(losses)))
        history["val_loss"].append(float(loss_fn(labels, predictions)))
        history["val_mean_absolute_error"].append(float(np.mean(np.abs(predictions - labels))))
        history["learning_rate"].append(float(optimizer.learning_rate))
        if writers:
            write_epoch_summaries(writers, history, epoch)
    return history


def tensorboard_writers(log_dir: str) -> dict[str, tf.summary.SummaryWriter]:
    """One writer per run, in the layout of Keras's TensorBoard callback (`train/`, `validation/`), which
    TFX's own examples write into `model_run`: TensorBoard draws train and eval loss in one chart."""
    return {split: tf.summary.create_file_writer(os.path.join(log_dir, split)) for split in ("train", "validation")}


def write_epoch_summaries(writers: dict[str, tf.summary.SummaryWriter], history: dict, epoch: int) -> None:
    """The epoch's values as scalars named as Keras names them (`val_accuracy` is `epoch_accuracy` under
    `validation/`), flushed so that a TensorBoard already open shows each epoch as it ends. Scalars only:
    no graph, histograms or profile. The other tasks' modules have the same two functions: a task's folder
    is copied whole to start a fork, and imports nothing from another task or from the pipeline."""
    for name, values in history.items():
        split, metric = ("validation", name[len("val_"):]) if name.startswith("val_") else ("train", name)
        with writers[split].as_default(step=epoch):
            tf.summary.scalar(f"epoch_{metric}", values[epoch])
    for writer in writers.values():
        writer.flush()


def make_signatures(model, tf_transform_output) -> dict:
    """serving_default: tf.Examples without the fare in, the predicted fare out; transform_features: the
    transformed features (the label among them), which the Evaluator reads."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    serving_spec = tf_transform_output.raw_feature_spec()
    for key in features.LABEL_SOURCE_KEYS:
        serving_spec.pop(key)
    names = [features.transformed_name(key) for key in features.FEATURE_KEYS]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_tf_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {"outputs": model({name: transformed[name] for name in names})}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec()))

    return {
        SERVING_SIGNATURE: serve_tf_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
    }


def run_fn(fn_args: FnArgs) -> None:
    """Train on the training split, measure on eval, save the model with its signatures for serving; the
    epoch history goes to `model_run` as TensorBoard logs and `history.json`."""
    hyperparameters = {**DEFAULT_HYPERPARAMETERS, **(fn_args.custom_config or {})}
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = hyperparameters["batch_size"]
    model = build_keras_model(hyperparameters["hidden_units"])
    history = train(
        model,
        _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, batch_size,
                 num_epochs=1 if fn_args.train_steps is None else None),
        _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, batch_size),
        train_steps=fn_args.train_steps,
        eval_steps=max(1, fn_args.eval_steps),
        learning_rate=hyperparameters["learning_rate"],
        epochs=max(1, int(hyperparameters["epochs"])),
        log_dir=fn_args.model_run_dir,
    )
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump(history, f)
    # No Keras object in the saved object graph (saving one re-traces it through AutoGraph): the
    # signatures, the model's variables and what the transform layer tracks (its tables and assets).
    signatures = make_signatures(model, tf_transform_output)
    servable = tf.Module()
    servable.model_variables = model.variables
    servable.transform_resources = getattr(model.tft_layer, "_saved_model_loader_tracked_dict", model.tft_layer)
    tf.saved_model.save(servable, fn_args.serving_model_dir, signatures=signatures)
