"""Running ncnn files written by ``seqlab export --format ncnn``: one sequence, or one step, at a time.

ncnn has no batch axis: a whole-sequence model reads x (T, F) and returns
logits (C,); a step model reads x (F,) and its states and returns logits
(C,) and the new states. Inputs are named ``in0``, ``in1``, ... and outputs
``out0``, ``out1``, ... (pnnx's names). Arithmetic is kept in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError


def load_ncnn(param: Path):
    """An ncnn.Net with full float32 arithmetic (ncnn defaults to fp16 storage where it can)."""
    import ncnn

    net = ncnn.Net()
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    return net


def ncnn_sequence(net, x: np.ndarray) -> np.ndarray:
    """One whole sequence through an ncnn model: x (T, F) -> logits (C,)."""
    import ncnn

    array = np.ascontiguousarray(x, dtype=np.float32)  # (T, F)
    frames = ncnn.Mat(array)  # borrows the array's memory: both stay alive until extracted
    extractor = net.create_extractor()
    if extractor.input("in0", frames) != 0:
        raise SeqlabError("ncnn cannot feed the model's input (the converted graph has an operator ncnn lacks)")
    status, result = extractor.extract("out0")
    if status != 0:
        raise SeqlabError("ncnn could not run the model")
    return np.array(result).reshape(-1)


def ncnn_step(net, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One step through an ncnn step model: x (F,), states as (L, 1, P) arrays -> logits (C,), new states."""
    import ncnn

    arrays = [np.ascontiguousarray(x[None], dtype=np.float32)] + [np.ascontiguousarray(s) for s in states]
    mats = [ncnn.Mat(a) for a in arrays]  # each Mat borrows its array: both stay alive until extracted
    extractor = net.create_extractor()
    for i, mat in enumerate(mats):
        extractor.input(f"in{i}", mat)
    outputs = []
    for i in range(len(mats)):
        status, result = extractor.extract(f"out{i}")
        if status != 0:
            raise SeqlabError("ncnn could not run the step model")
        outputs.append(np.array(result))
    return outputs[0].reshape(-1), [o.reshape(s.shape) for o, s in zip(outputs[1:], states)]
