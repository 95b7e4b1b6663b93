# The two commands: `make demo` and `make test`. Both set up .venv from scratch when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS := models/onnx/mlp.onnx models/onnx/lenet5.onnx models/onnx/resnet18.onnx \
          models/onnx/mobilenetv2.onnx models/onnx/transformer.onnx models/onnx/lstm.onnx

.PHONY: demo test conformance models install lint clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,models,dev,serve,ray,tune]"
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium renders the HTML report in tests/test_report.py (Debian package).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
chromium:
ifeq ($(CHROMIUM),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif

$(MODELS) &: $(STAMP) $(wildcard models/*.py)
	$(BIN)/python -m models.build --out models/onnx

models: $(MODELS)

# The seed MLP compiled for each target on its own and for all three (placed by cost), then
# run (gpu falls back to the CPU code with a warning when there is no CUDA GPU; fpga runs on
# PoCL, the OpenCL emulator).
demo: models
	@mkdir -p build
	@for t in cpu gpu fpga cpu,gpu,fpga; do \
	  n=$$(echo $$t | tr , -); echo "=== seed MLP, --targets $$t ==="; \
	  $(BIN)/hcompile models/onnx/mlp.onnx -o build/mlp-$$n.hca --targets $$t || exit 1; \
	  $(BIN)/hcompile inspect build/mlp-$$n.hca | sed -n '/^partitions/,/^plan/p'; \
	  $(BIN)/hcompile run build/mlp-$$n.hca --random --output build/mlp-$$n-out.npz || exit 1; \
	done

test: models chromium
	$(BIN)/python -m pytest -n 2 tests

# The whole ONNX node-test suite (make test runs a fixed 1-in-6 sample of it).
conformance: models
	HCOMPILE_CONFORMANCE=full $(BIN)/python -m pytest -n 2 tests/conformance

lint: $(STAMP)
	$(BIN)/ruff check hcompile passes targets models tests benchmarks
	$(BIN)/mypy hcompile passes targets

clean:
	rm -rf build hcompile-dump .pytest_cache .mypy_cache .ruff_cache
