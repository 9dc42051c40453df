# Quick start: `make demo` (set up + run the demo), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-avx2 lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/vosuite demo --out demo_output --overwrite

test: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q

# The numerics-sensitive tests again on PyTorch's and oneDNN's AVX2 kernels (what an AVX2-only CPU runs),
# so a tolerance measured on AVX-512 alone cannot slip in.
NUMERIC_TESTS := tests/test_deaot_fixture.py tests/test_deaot_deform.py tests/test_segment_fixture.py \
	tests/test_metrics_official_fixture.py tests/test_inference_engine.py tests/test_onnx.py tests/test_bench.py \
	tests/test_nn_attention.py tests/test_nn_deformable_attention.py tests/test_nn_layers.py tests/test_dino.py \
	tests/test_bba_block.py tests/test_bba_losses.py tests/test_distill_losses.py tests/test_s2s_model.py \
	tests/test_s2s_losses.py tests/test_s2s_inference.py tests/test_training_losses.py tests/test_attention_probe.py
test-avx2: setup
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest -q $(NUMERIC_TESTS)

bench: setup
	$(PY) benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) demo_output
