# The two commands: `make demo` and `make test`. Both set up .venv from scratch when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS := models/onnx/mlp.onnx models/onnx/lenet5.onnx models/onnx/resnet18.onnx \
          models/onnx/mobilenetv2.onnx models/onnx/transformer.onnx models/onnx/lstm.onnx
TARGETS_DEMO ?= cpu

.PHONY: demo test models install lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,models,dev]"
	touch $(STAMP)

install: $(STAMP)

$(MODELS) &: $(STAMP) $(wildcard models/*.py)
	$(BIN)/python -m models.build --out models/onnx

models: $(MODELS)

demo: models
	@mkdir -p build
	$(BIN)/hcompile models/onnx/mlp.onnx -o build/mlp.hca --targets $(TARGETS_DEMO)
	$(BIN)/hcompile inspect build/mlp.hca
	$(BIN)/hcompile run build/mlp.hca --random --output build/mlp-out.npz

test: models
	$(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check hcompile passes targets models tests benchmarks
	$(BIN)/mypy hcompile passes targets

clean:
	rm -rf build hcompile-dump .pytest_cache .mypy_cache .ruff_cache
