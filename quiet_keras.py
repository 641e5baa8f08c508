"""Import Keras with TensorFlow's log noise kept out of the user's terminal.

TensorFlow writes oneDNN, CUDA-stub and CPU-feature notices to file descriptor 2 while
it loads, before its own log level applies, so TF_CPP_MIN_LOG_LEVEL alone does not
silence them. Entry points import Keras as ``from quiet_keras import keras`` (loaded on
first use); errors raised by the import itself still reach the terminal. TensorFlow's
Python-side warnings (tf.function retracing when predict sees a new batch size) go to
the standard "tensorflow" logger, which is set to show errors only.
"""

import contextlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to fd 2 to /dev/null for the duration."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def __getattr__(name: str):
    if name != "keras":
        raise AttributeError(name)
    with native_stderr_silenced():
        import keras

        # TensorFlow's first op prints notices of its own. JAX's is left for later: a
        # multi-process run must join (parallel.initialize) before JAX's first op.
        if keras.backend.backend() == "tensorflow":
            keras.ops.zeros(1)
    return keras
