"""Requantise an int8 (QDQ) ONNX model's weights to 7 bits, in place, as ``ferkit export --int8`` now does.

    python tools/int8_weights_7bit.py src/ferkit/weights/resnet_sw_fer2013.int8.onnx

On x86 CPUs with AVX2 but no VNNI, ONNX Runtime's fused int8 convolutions multiply uint8 activations by int8
weights with VPMADDUBSW, whose 16-bit sums of two products saturate once weights pass +-64 (255 * 127 * 2 >
32767). With weights in [-64, 64] the kernels are exact, so such models may run fused everywhere. This rewrites
a model exported before ``--int8`` quantised with ``reduce_range``, whose float weights are gone: each weight
channel's scale grows from max|q| to 64 steps (q' = round(q * 64 / max|q|)), the int32 bias of the convolution or
Gemm is rescaled to the new weight scale, and the metadata records ``weight_bits = 7``. Everything else (graph,
activation scales, other metadata) is unchanged.
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper

from ferkit.core.runtime import INT8_WEIGHT_BITS

LIMIT = 2 ** (int(INT8_WEIGHT_BITS) - 1)  # 64: the largest |weight| the fused kernels take exactly


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _per_channel(values: np.ndarray, array: np.ndarray, axis: int) -> np.ndarray:
    """``values`` (one per channel, or a scalar) shaped to broadcast along ``array``'s ``axis``."""
    if values.ndim == 0:
        return values
    shape = [1] * array.ndim
    shape[axis] = values.size
    return values.reshape(shape)


def requantise(model: onnx.ModelProto) -> int:
    """Rewrite ``model``'s int8 weights (and their layers' int32 biases) to 7 bits; the number of layers changed."""
    inits = {i.name: i for i in model.graph.initializer}
    dequantised_by = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    def put(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(value, name))

    changed = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.input[1] not in dequantised_by:
            continue
        w_dq = dequantised_by[node.input[1]]
        q_name, s_name = w_dq.input[0], w_dq.input[1]
        if q_name not in inits or inits[q_name].data_type != onnx.TensorProto.INT8:
            continue
        if len(w_dq.input) > 2 and np.any(array(w_dq.input[2]) != 0):
            raise ValueError(f"{q_name}: weights with a zero point other than 0 (asymmetric) are not handled")
        q, scale, axis = array(q_name).astype(np.float64), array(s_name), _axis(w_dq)
        reduce = tuple(d for d in range(q.ndim) if d != axis or scale.ndim == 0)
        peak = np.maximum(np.abs(q).max(axis=reduce), 1.0)
        factor = np.where(peak > LIMIT, LIMIT / peak, 1.0)  # shaped like scale: q' = q * factor, scale' = scale / factor
        if np.all(factor == 1.0):
            continue
        put(q_name, np.clip(np.round(q * _per_channel(factor, q, axis)), -LIMIT, LIMIT).astype(np.int8))
        put(s_name, (scale / factor).astype(scale.dtype))
        if len(node.input) > 2 and node.input[2] in dequantised_by:
            b_dq = dequantised_by[node.input[2]]
            b_name, bs_name = b_dq.input[0], b_dq.input[1]
            bias, bias_scale = array(b_name).astype(np.float64), array(bs_name)
            put(b_name, np.round(bias * factor).astype(np.int32))
            put(bs_name, (bias_scale / factor).astype(bias_scale.dtype))
        changed += 1
    return changed


def main(path: str) -> None:
    model = onnx.load(path)
    changed = requantise(model)
    meta = {p.key: p for p in model.metadata_props}
    if "weight_bits" in meta:
        meta["weight_bits"].value = INT8_WEIGHT_BITS
    else:
        model.metadata_props.add(key="weight_bits", value=INT8_WEIGHT_BITS)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print(f"{path}: {changed} layers requantised to 7-bit weights")


if __name__ == "__main__":
    main(sys.argv[1])
