# preserve — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
APT_PACKAGES := restic openssl fonts-dejavu-core poppler-utils openssh-server openssh-client ocrmypdf tesseract-ocr-vie \
                chromium

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

DEMO_PORT ?= 8080

# the demo, then its web application left running in the background (stopped by the next `make demo`)
demo: setup
	@if [ -f .demo-web.pid ]; then kill $$(cat .demo-web.pid) 2>/dev/null || true; rm -f .demo-web.pid; sleep 1; fi
	$(VENV)/bin/preserve demo --repo ./demo-data
	@nohup $(VENV)/bin/preserve serve --repo ./demo-data --port $(DEMO_PORT) > demo-web.log 2>&1 & echo $$! > .demo-web.pid
	@for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1; $(PY) -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$(DEMO_PORT)/login', timeout=2)" 2>/dev/null && break; done; \
	if $(PY) -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$(DEMO_PORT)/login', timeout=2)" 2>/dev/null; then \
	  echo ""; echo "Web: http://127.0.0.1:$(DEMO_PORT)/  (đăng nhập / sign in: quantri, luutru or bandoc; mật khẩu / password: demo-mat-khau)"; \
	  echo "     stop it: kill \$$(cat .demo-web.pid)"; \
	else echo "The web application did not start: see demo-web.log (port $(DEMO_PORT) in use? make demo DEMO_PORT=8081)"; fi

# one pytest worker per core; each test file stays on one worker (its module fixtures are built once)
test: setup
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile

bench: setup
	$(PY) bench/ingest.py

clean:
	@if [ -f .demo-web.pid ]; then kill $$(cat .demo-web.pid) 2>/dev/null || true; rm -f .demo-web.pid; fi
	rm -rf demo-data demo-web.log .pytest_cache
