# make run   install into .venv, run the default pipeline, build the HTML report
# make test  install into .venv, run the test suite (what CI runs)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
RUN_NAME := $(shell sed -n 's/^run: *\([A-Za-z0-9_.-]*\).*/\1/p' config/config.yaml)

.PHONY: install run report test dryrun lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

run: install
	snakemake --profile profiles/local
	$(MAKE) report

report: install
	snakemake --profile profiles/local --report results/$(RUN_NAME)/report.html

test: install
	$(BIN)/python -m pytest -q tests

dryrun: install
	snakemake --profile profiles/local -n

lint: install
	snakemake --lint

clean:
	rm -rf results logs benchmarks/results .snakemake
