"""Where a training step's time goes: TensorFlow's convolution kernels at batch 32, one thread.

    python -m bench.kernels 0|1      # TF_ENABLE_ONEDNN_OPTS for this process; prints JSON

For every convolution of both models: CPU milliseconds of the forward kernel and of the two
backward kernels (input gradient, skipped for the first layer as training does; filter
gradient), and the GFLOP/s they reach; beside them, OpenBLAS's matrix product of the same size
(numpy, one thread) as what the arithmetic allows. One thread, CPU time: a busy machine
disturbs these less than wall-clock times.
"""

from __future__ import annotations

import json
import os
import sys
import time

# (model, layer): (input side, C_in, C_out, kernel, padding, first layer)
CONVS = {
    "baseline conv 1": (28, 1, 32, 3, "VALID", True),
    "baseline conv 2": (13, 32, 64, 3, "VALID", False),
    "baseline conv 3": (11, 64, 64, 3, "VALID", False),
    "residual conv 1": (28, 1, 32, 3, "SAME", True),
    "residual conv 2": (14, 32, 64, 3, "SAME", False),
    "residual shortcut": (14, 32, 64, 1, "SAME", False),
    "residual conv 3": (7, 64, 64, 3, "SAME", False),
}
BATCH = 32
STRIDES = [1, 1, 1, 1]


def _cpu_ms(fn, calls: int = 20) -> float:
    fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return 1000 * (time.process_time() - start) / calls


def main(onednn: str) -> None:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = onednn
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out = {}
    for name, (side, cin, cout, k, pad, first) in CONVS.items():
        x = tf.random.normal((BATCH, side, side, cin))
        w = tf.random.normal((k, k, cin, cout))
        y = tf.nn.conv2d(x, w, 1, pad)
        dy = tf.random.normal(y.shape)
        kernels = {
            "forward": tf.function(lambda x=x, w=w, pad=pad: tf.nn.conv2d(x, w, 1, pad)),
            "filter_grad": tf.function(
                lambda x=x, w=w, dy=dy, pad=pad: tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=w.shape, out_backprop=dy, strides=STRIDES, padding=pad
                )
            ),
        }
        if not first:
            kernels["input_grad"] = tf.function(
                lambda x=x, w=w, dy=dy, pad=pad: tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=x.shape, filter=w, out_backprop=dy, strides=STRIDES, padding=pad
                )
            )
        macs = int(y.shape[1] * y.shape[2]) * k * k * cin * cout * BATCH
        ms = {kind: _cpu_ms(fn) for kind, fn in kernels.items()}
        a = np.random.rand(BATCH * int(y.shape[1] * y.shape[2]), k * k * cin).astype(np.float32)
        b = np.random.rand(k * k * cin, cout).astype(np.float32)
        out[name] = {"macs": macs, "ms": ms, "gemm_ms": _cpu_ms(lambda a=a, b=b: a @ b)}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
