# vertspine: the commands README.md gives.
VENV ?= $(CURDIR)/.venv
PY := $(if $(filter none,$(VENV)),python3,$(VENV)/bin/python)
# Extra train_net.py config overrides: make phantom-train ARGS="SOLVER.MAX_ITER 20"
ARGS ?=

.PHONY: install test phantom-train collect-env

install:  ## one command: torch, detectron2, every dependency, vertspine (editable)
	VENV=$(VENV) bash scripts/install.sh

test:  ## the whole test suite
	$(PY) -m pytest -q tests

phantom-train:  ## the main job: Faster R-CNN R-50-FPN on the embedded phantom lesion data
	$(PY) train_net.py --config-file configs/phantom/faster_rcnn_R_50_FPN_phantom_lesions.yaml \
		--num-gpus 1 MODEL.DEVICE cpu OUTPUT_DIR output/faster_rcnn_R_50_FPN_phantom_lesions $(ARGS)

collect-env:
	$(PY) -m vertspine.collect_env
