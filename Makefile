# make run   install into .venv, run the default pipeline, build the HTML report
# make test  install into .venv, run the test suite (what CI runs)
# make delphes  build Delphes into .venv/delphes against the ROOT wheel (DELPHES_SRC=folder or .tar.gz;
#               default: the vendored ../shared/vendor/delphes/delphes-src.tar.gz)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
RUN_NAME := $(shell sed -n 's/^run: *\([A-Za-z0-9_.-]*\).*/\1/p' config/config.yaml)

DELPHES_SRC ?= ../shared/vendor/delphes/delphes-src.tar.gz

.PHONY: install run report test dryrun lint clean delphes

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

run: install
	snakemake --profile profiles/local
	$(MAKE) report

report: install
	snakemake --profile profiles/local --report results/$(RUN_NAME)/report.html

delphes: install
	bash scripts/build_delphes.sh $(VENV) $(DELPHES_SRC)

test: install
	$(BIN)/python -m pytest -q tests

dryrun: install
	snakemake --profile profiles/local -n

lint: install
	snakemake --lint

clean:
	rm -rf results logs benchmarks/results .snakemake
