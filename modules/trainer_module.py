"""`run_fn` for the TFX Trainer: a Keras model on transformed features, saved with serving signatures.

The saved model embeds the transform graph, so clients send raw features and get the probability that
the trip is a big tipper.
"""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs  # noqa: E402
from scipy import stats  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402


def _sibling(name: str):
    """The module `name`.py beside this file (see transform_module.py: TFX never loads this file as part of
    its package)."""
    spec = importlib.util.spec_from_file_location(f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py"))
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


features = _sibling("features")

# Rows read and transformed at a time when training asks for smaller batches, which are cut from the
# transformed ones: the transform graph costs about the same per call whatever the rows, and cutting its
# dense outputs costs far less than cutting the raw examples, many of them sparse.
READ_ROWS = 4096

# Signature names in the pushed SavedModel.
SERVING_SIGNATURE = "serving_default"
RAW_FEATURES_SIGNATURE = "serving_raw"
TRANSFORM_SIGNATURE = "transform_features"

DEFAULT_HYPERPARAMETERS = {
    "batch_size": 128,
    "eval_batch_size": 256,
    "hidden_units": [64, 32],
    "learning_rate": 0.003,
    "epochs": 1,
}

# Every tf.function here is built with autograph=False: AutoGraph's first conversion of Keras's
# training internals costs about 30 s on two cores, and nothing here branches on tensor values.


def _numeric_keys() -> list[str]:
    return features.DENSE_FLOAT_FEATURE_KEYS


def _categorical_keys() -> list[str]:
    return (
        features.BUCKET_FEATURE_KEYS
        + features.CATEGORICAL_FEATURE_KEYS
        + features.VOCAB_FEATURE_KEYS
    )


class OneHotDense(tf.keras.layers.Layer):
    """`Dense` with ReLU over numbers and one-hot categories, without building the one-hot matrix.

    The same weights and function as a Dense layer over the numbers concatenated with each category's
    one-hot vector; but a one-hot vector times the kernel is the kernel's row for its id, so each category
    adds the row it picks. With a thousand-id vocabulary per feature the matrix product was most of a
    training step's time.
    """

    def __init__(self, units: int, numbers: int, cardinalities: dict[str, int], **kwargs):
        """`numbers` columns of numbers, then a column of ids per entry of `cardinalities` (a feature's
        name and its number of ids), in that order."""
        super().__init__(**kwargs)
        self.units, self.numbers = units, numbers
        self.names, self.cardinalities = list(cardinalities), list(cardinalities.values())
        # Row of each category's first id in the kernel: after the numbers, in the order given.
        self.offsets = [numbers + sum(self.cardinalities[:i]) for i in range(len(self.cardinalities))]

    def build(self, input_shape):
        width = self.numbers + sum(self.cardinalities)
        self.kernel = self.add_weight("kernel", shape=(width, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight("bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        numbers, ids = inputs
        outputs = tf.matmul(numbers, self.kernel[: self.numbers]) + self.bias
        for name, offset, cardinality, column in zip(self.names, self.offsets, self.cardinalities, ids):
            # An id out of its range would pick a row of the next feature: fail as one_hot would.
            # A message of strings only: tf.debugging.assert_less's carries the tensors, which puts a cond
            # per feature in every traced function (the served model: 118 functions against 70).
            in_range = tf.debugging.Assert(
                tf.reduce_all(tf.cast(column, tf.uint64) < tf.constant(cardinality, tf.uint64)),
                [f"{name}: an id out of [0, {cardinality})"],
            )
            with tf.control_dependencies([in_range]):
                outputs += tf.gather(self.kernel, column + offset)
        return tf.nn.relu(outputs)


def build_keras_model(hidden_units: list[int]) -> tf.keras.Model:
    """A feed-forward net over z-scored numbers and one-hot categories, ending in a sigmoid."""
    inputs = {}
    for key in _numeric_keys() + _categorical_keys():
        name = features.transformed_name(key)
        dtype = tf.float32 if key in _numeric_keys() else tf.int64
        inputs[name] = tf.keras.layers.Input(shape=(), name=name, dtype=dtype)
    numbers = tf.keras.layers.concatenate(
        [tf.keras.layers.Reshape((1,))(inputs[features.transformed_name(key)]) for key in _numeric_keys()]
    )
    ids = [inputs[features.transformed_name(key)] for key in _categorical_keys()]
    cardinalities = {
        features.transformed_name(key): features.categorical_cardinality(key) for key in _categorical_keys()
    }
    hidden = OneHotDense(hidden_units[0], len(_numeric_keys()), cardinalities)((numbers, ids))
    for units in hidden_units[1:]:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    output = tf.keras.layers.Dense(1, activation="sigmoid", name="big_tipper_probability")(hidden)
    return tf.keras.Model(inputs=inputs, outputs=output)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties share their rank."""
    labels = np.asarray(labels).reshape(-1).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = stats.rankdata(np.asarray(scores).reshape(-1))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def train(
    model: tf.keras.Model,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset,
    train_steps: int | None,
    eval_steps: int,
    learning_rate: float,
    epochs: int = 1,
    log_dir: str | None = None,
) -> tuple[dict[str, list[float]], int]:
    """Train with Adam on binary cross-entropy; after each epoch, measure loss and AUC on the first
    `eval_steps` eval batches, and write them to TensorBoard logs in `log_dir` when given. Returns the
    history and the rows trained on.

    `train_steps` batches in all, split over the epochs, from a dataset without end; or, when None (the
    full scale), each epoch one whole pass over a dataset that ends.
    A plain loop instead of `Model.fit`, so that no function goes through AutoGraph.
    """
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    loss_fn = tf.keras.losses.BinaryCrossentropy()

    @tf.function(autograph=False)
    def train_step(features_batch, labels):
        with tf.GradientTape() as tape:
            predictions = model(features_batch, training=True)
            loss = loss_fn(tf.reshape(tf.cast(labels, tf.float32), [-1, 1]), predictions)
        # OneHotDense's kernel gets its gradient as rows (IndexedSlices); Adam is given it whole, as a
        # Dense layer's, since its update of sparse rows is not the same (it squares before summing).
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function(autograph=False)
    def predict_step(features_batch):
        return model(features_batch, training=False)

    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_auc": [], "learning_rate": []}
    writers = tensorboard_writers(log_dir) if log_dir else None
    rows = 0

    def run_steps(batches):
        nonlocal rows
        losses = []
        for features_batch, labels in batches:
            losses.append(train_step(features_batch, labels))
            rows += int(tf.shape(labels)[0])
        return [float(loss) for loss in losses]

    # The same eval rows after every epoch, read once: epochs compare on equal terms, and a new iterator
    # per epoch read the eval files again.
    eval_batches = list(eval_dataset.take(eval_steps))
    if train_steps is not None:
        train_batches = iter(train_dataset)
        steps_per_epoch = max(1, train_steps // epochs)
    for epoch in range(epochs):
        if train_steps is None:
            losses = run_steps(train_dataset)
        else:
            steps = steps_per_epoch if epoch < epochs - 1 else train_steps - steps_per_epoch * epoch
            losses = run_steps(next(train_batches) for _ in range(steps))
        labels, scores = [], []
        for features_batch, label_batch in eval_batches:
            labels.append(label_batch.numpy().reshape(-1))
            scores.append(predict_step(features_batch).numpy().reshape(-1))
        labels, scores = np.concatenate(labels), np.concatenate(scores)
        history["loss"].append(float(np.mean(losses)))
        history["val_loss"].append(float(loss_fn(labels.reshape(-1, 1), scores.reshape(-1, 1))))
        history["val_auc"].append(roc_auc(labels, scores))
        history["learning_rate"].append(float(optimizer.learning_rate))
        if writers:
            write_epoch_summaries(writers, history, epoch)
    return history, rows


def tensorboard_writers(log_dir: str) -> dict[str, tf.summary.SummaryWriter]:
    """One writer per run, in the layout of Keras's TensorBoard callback (`train/`, `validation/`), which
    TFX's own taxi example writes into `model_run`: TensorBoard draws train and eval loss in one chart."""
    return {split: tf.summary.create_file_writer(os.path.join(log_dir, split)) for split in ("train", "validation")}


def write_epoch_summaries(writers: dict[str, tf.summary.SummaryWriter], history: dict, epoch: int) -> None:
    """The epoch's values as scalars named as Keras names them (`val_auc` is `epoch_auc` under
    `validation/`), flushed so that a TensorBoard already open shows each epoch as it ends.

    Scalars only: no graph, histograms or profile, which would cost seconds for nothing asked of them.
    The penguin task's module has the same two functions: a task's folder is copied whole to start a
    fork, and imports nothing from another task or from the pipeline.
    """
    for name, values in history.items():
        split, metric = ("validation", name[len("val_"):]) if name.startswith("val_") else ("train", name)
        with writers[split].as_default(step=epoch):
            tf.summary.scalar(f"epoch_{metric}", values[epoch])
    for writer in writers.values():
        writer.flush()


def model_inputs(model: tf.keras.Model, transformed: dict) -> dict:
    """The transformed features the model takes, leaving out the label and anything else."""
    return {name: transformed[name] for name in model.input_names}


def _dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    num_epochs: int | None = None,
) -> tf.data.Dataset:
    """Batches of (transformed features, label), `num_epochs` passes over the files (None: without end,
    and steps bound the training).

    Transform does not write transformed copies of the examples (`materialize=False`): the batches are
    raw examples put through the transform graph here, so only the rows training reads are
    transformed, and with the graph the served model embeds.
    """
    raw = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=max(batch_size, READ_ROWS), num_epochs=num_epochs),
        tf_transform_output.raw_metadata.schema,
    )
    transform_layer = tf_transform_output.transform_features_layer()

    @tf.autograph.experimental.do_not_convert
    def transform(raw_features):
        transformed = transform_layer(raw_features)
        label = transformed.pop(features.LABEL_KEY)
        return transformed, label

    transformed = raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size < READ_ROWS:
        transformed = transformed.unbatch().batch(batch_size)
    return transformed.prefetch(tf.data.AUTOTUNE)


def _raw_serving_spec(tf_transform_output: tft.TFTransformOutput) -> dict:
    """Raw feature spec of a serving request: everything but the columns the label comes from."""
    spec = tf_transform_output.raw_feature_spec()
    for key in features.LABEL_SOURCE_KEYS:
        spec.pop(key, None)
    return spec


def _raw_input_dtype(spec) -> tf.DType:
    """Dtype of a feature in the raw-values signature: numbers as float64 (exact for ids up to 2**53)
    so that NaN can mark a missing value, strings as strings with "" for missing."""
    return tf.string if spec.dtype == tf.string else tf.float64


def _dense_to_raw(values: tf.Tensor, spec) -> tf.Tensor | tf.SparseTensor:
    """One raw feature from a [batch] tensor into the form Transform parsed it in during training.

    A NaN number or an empty string stands for a missing value, which optional (VarLen) features
    represent by an absent entry.
    """
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(tf.cast(values, spec.dtype), [-1] + list(spec.shape))
    if values.dtype == tf.string:
        present = tf.not_equal(values, "")
    else:
        present = tf.logical_not(tf.math.is_nan(values))
    rows = tf.where(present)[:, 0]
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    return tf.SparseTensor(
        indices,
        tf.cast(tf.boolean_mask(values, present), spec.dtype),
        tf.stack([tf.size(values, out_type=tf.int64), tf.constant(1, tf.int64)]),
    )


def make_signatures(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput) -> dict:
    """The SavedModel's signatures; each applies the embedded transform graph to raw features."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    serving_spec = _raw_serving_spec(tf_transform_output)

    @tf.function(
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")],
        autograph=False,
    )
    def serve_tf_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, serving_spec)
        transformed = model.tft_layer(raw)
        return {"outputs": model(model_inputs(model, transformed))}

    @tf.function(
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")],
        autograph=False,
    )
    def transform_features(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw)

    def serve_raw_features(**raw_values):
        raw = {key: _dense_to_raw(raw_values[key], spec) for key, spec in serving_spec.items()}
        transformed = model.tft_layer(raw)
        return {"outputs": model(model_inputs(model, transformed))}

    raw_signature = {
        key: tf.TensorSpec(shape=[None], dtype=_raw_input_dtype(spec), name=key)
        for key, spec in serving_spec.items()
    }
    return {
        SERVING_SIGNATURE: serve_tf_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
        RAW_FEATURES_SIGNATURE: tf.function(
            serve_raw_features, autograph=False
        ).get_concrete_function(**raw_signature),
    }


def run_fn(fn_args: FnArgs) -> None:
    """Train on the transformed training split, validate on eval, save the model for serving; the epoch
    history goes to `model_run` as TensorBoard logs and `history.json`, the rows trained on and the
    seconds it took to `training.json`.

    With train steps (`TrainArgs.num_steps`), that many batches; without (the pipeline's full scale),
    `epochs` whole passes over the training split.
    """
    hyperparameters = {**DEFAULT_HYPERPARAMETERS, **(fn_args.custom_config or {})}
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_dataset = _dataset(
        fn_args.train_files,
        fn_args.data_accessor,
        tf_transform_output,
        hyperparameters["batch_size"],
        num_epochs=1 if fn_args.train_steps is None else None,
    )
    eval_dataset = _dataset(
        fn_args.eval_files,
        fn_args.data_accessor,
        tf_transform_output,
        hyperparameters["eval_batch_size"],
    )
    model = build_keras_model(hyperparameters["hidden_units"])
    started = time.perf_counter()
    history, rows = train(
        model,
        train_dataset,
        eval_dataset,
        train_steps=fn_args.train_steps,
        eval_steps=max(1, fn_args.eval_steps),
        learning_rate=hyperparameters["learning_rate"],
        epochs=max(1, int(hyperparameters["epochs"])),
        log_dir=fn_args.model_run_dir,
    )
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump(history, f)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training.json"), "w") as f:
        json.dump({"rows": rows, "seconds": time.perf_counter() - started}, f)
    export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)


def export_serving_model(
    model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str
) -> None:
    """Save the signatures and what they use (the model's variables, the transform graph's resources).

    No Keras object goes into the saved object graph: Keras serializes any it finds by re-tracing it
    through AutoGraph (`Model.save`: 16 s against 9 s; the transform layer alone, itself a Keras
    model: 5 s against 1 s). Serving, TFMA and TF Serving only ever call the signatures.
    """
    signatures = make_signatures(model, tf_transform_output)
    servable = tf.Module()
    servable.model_variables = model.variables
    # What the transform layer itself tracks (its loaded transform SavedModel: tables, vocabulary
    # assets); the layer is tracked whole only if a TFT release stops exposing it.
    servable.transform_resources = getattr(
        model.tft_layer, "_saved_model_loader_tracked_dict", model.tft_layer
    )
    tf.saved_model.save(servable, export_dir, signatures=signatures)
