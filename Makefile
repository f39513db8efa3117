# Switchboard: `make run` starts a demo server, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SB := $(VENV)/bin/switchboard
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Real peers and servers the tests talk to (Debian packages)
DEB_TEST_PACKAGES := sip-tester baresip socat sox espeak-ng postgresql libspandsp2
CONFIG := etc/switchboard.toml

.PHONY: run test native deps-run deps-debian lint typecheck unit bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# the media cores compiled by mypyc (confserver/native.py); a no-op when up to date
native: $(STAMP)
	$(PY) -m confserver.native

var/tls/cert.pem: | $(STAMP)
	$(SB) tls generate --cert var/tls/cert.pem --key var/tls/key.pem --host localhost

run: $(STAMP) native var/tls/cert.pem deps-run
	$(SB) demo --config $(CONFIG)
	$(SB) prompts build --config $(CONFIG)
	exec $(SB) serve --config $(CONFIG)

# the attendant's prompts are spoken by espeak-ng (built once, skipped when built);
# G.722 runs on spandsp's codec (FFmpeg's, four times dearer, without it)
deps-run:
	@dpkg -s espeak-ng libspandsp2 >/dev/null 2>&1 || \
	  $(MAKE) deps-debian DEB_TEST_PACKAGES="espeak-ng libspandsp2"

deps-debian:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing \
	    >/dev/null || { echo "could not install:$$missing" >&2; exit 1; }; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check confserver dialin mediation tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# the real-peer tests mostly wait on calls in real time: two workers, each taking
# whole files (a file's servers share its fixed RTP range), halve the run
TEST_WORKERS ?= 2
test: deps-debian $(STAMP) native lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

unit: $(STAMP) native
	$(PY) -m pytest -q -m "not integration" --ignore=tests/integration

# bench/mediation_media --rtpengine compares with rtpengine (userspace, Debian package)
bench: $(STAMP) native deps-debian
	@dpkg -s rtpengine-daemon >/dev/null 2>&1 || $(MAKE) deps-debian DEB_TEST_PACKAGES=rtpengine-daemon
	$(PY) -m bench.sip_cps

clean:
	rm -rf $(VENV) var build .mypy_cache .ruff_cache .pytest_cache
	find confserver -name '*.so' -delete
