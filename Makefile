PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow bench-peers clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/ferkit demo

test: venv
	FERKIT_TEST_ARTIFACTS=runs/test-artifacts $(BIN)/python -m pytest -q

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

# `fer` (TensorFlow) for side-by-side benchmarks only, in its own environment; never a ferkit dependency.
bench-peers: venv
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q --no-deps fer==25.10.3
	.venv-peers/bin/pip install -q tensorflow "opencv-contrib-python<5" pandas requests tqdm "moviepy<2" ffmpeg-python matplotlib pillow
	$(BIN)/python benchmarks/inference_speed.py --fer-python .venv-peers/bin/python

clean:
	rm -rf $(VENV) .venv-peers runs .pytest_cache
