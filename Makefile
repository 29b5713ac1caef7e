# preserve — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
APT_PACKAGES := restic openssl fonts-dejavu-core poppler-utils openssh-server openssh-client ocrmypdf tesseract-ocr-vie

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed
	@if [ "$$(id -u)" = "0" ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping apt-get (needs: $(APT_PACKAGES))"; fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: setup
	$(VENV)/bin/preserve demo --repo ./demo-data

# one pytest worker per core; each test file stays on one worker (its module fixtures are built once)
test: setup
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile

bench: setup
	$(PY) bench/ingest.py

clean:
	rm -rf demo-data .pytest_cache
