"""One timed training run in a fresh process; prints one JSON line.

    python -m bench.train_worker plain|tuned MODEL EPOCHS [TRAIN_LIMIT]

``plain``: the report's ``model.fit(x, y, epochs, batch_size=32, shuffle=True, verbose=0)`` on
float32 arrays, TensorFlow as installed. ``tuned``: the same fit with core.train's compute settings
(oneDNN, steps per execution) and nothing else: no live log, no per-epoch test evaluation.
Epochs are timed by a callback with epoch hooks only, which leaves Keras' batch loop untouched.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str]) -> None:
    mode, model_name, epochs = argv[0], argv[1], int(argv[2])
    limit = int(argv[3]) if len(argv) > 3 else None
    compute = {}
    if mode == "tuned":
        from core.compute import compute_settings, configure_compute
        from core.train import TrainConfig

        configure_compute()
        compute = compute_settings(TrainConfig(model_name).log_every)  # the default log interval
    elif mode != "plain":
        raise SystemExit(f"unknown mode {mode!r}")
    import keras

    from core.data import load_dataset, normalise, one_hot
    from core.models import get_spec

    data = load_dataset(allow_download=False)
    x, y = normalise(data.x_train[:limit]), one_hot(data.y_train[:limit])
    keras.utils.set_random_seed(0)
    model = get_spec(model_name).build()
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        **({"steps_per_execution": compute["steps_per_execution"]} if compute else {}),
    )
    seconds, cpu = [], []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.wall)
            cpu.append(time.process_time() - self.cpu)

    model.fit(x, y, epochs=epochs, batch_size=32, shuffle=True, verbose=0, callbacks=[EpochTimer()])
    print(json.dumps({"epoch_seconds": seconds, "epoch_cpu_seconds": cpu, "images": len(x),
                      "compute": compute}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
