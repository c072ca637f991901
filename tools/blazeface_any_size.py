"""Make the converted BlazeFace ONNX model take any input height and width (multiples of 32).

    python tools/blazeface_any_size.py face_detection_back.onnx

The network is fully convolutional (SAME pooling, reshapes with -1); only the declared shapes fix it
at 256x256. A 640x480 frame then runs as 256x192 instead of being padded to a square (a quarter
less work). Weights and nodes are unchanged.
"""

import sys

import onnx


def main(path: str) -> None:
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, path)


if __name__ == "__main__":
    main(sys.argv[1])
