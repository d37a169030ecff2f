# auditdb: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
PG_CONFIG ?= pg_config
EXT_BUILD := build/extension

.PHONY: help demo test test-unit bench bench-worker bench-anchor lint install-extension build clean report-screenshots

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

demo: ## end to end on the embedded default: install, write, seal, verify, GDPR erase, tamper, catch (no Docker, no config)
	$(GO) run ./cmd/auditworker demo

test: ## every test, integration included, with -race (starts PostgreSQL and Redis itself)
	@if [ -z "$$AUDIT_TEST_DB_URL" ] && [ "$${AUDIT_TEST_DOCKER:-1}" != 0 ] && docker info >/dev/null 2>&1; then \
		echo "make test: Docker answers: the harness builds docker/postgres.Dockerfile (extension and C accelerator inside); install-extension skipped"; \
	else \
		$(MAKE) install-extension; \
	fi
	$(GO) test -race -count=1 -timeout 30m ./...

test-unit: ## unit tests only (no services)
	$(GO) test -short ./integrity/... ./internal/... ./sql/...

bench: ## pgbench and bulk loads with the trigger on and off, verification speed; writes BENCHMARKS.md
	$(GO) run ./tests/bench -out BENCHMARKS.md

bench-worker: ## worker suite: seal cost at 10k rows/s and unpaced, archive throughput, S3 vs directory sink, incremental verification; writes its BENCHMARKS.md sections
	$(GO) run ./tests/bench/worker -parts seal -out BENCHMARKS.md
	$(GO) run ./tests/bench/worker -parts seal -rate 0 -window 30s -out BENCHMARKS.md
	$(GO) run ./tests/bench/worker -parts archive,verify -archive-max 100000,1000000 -out BENCHMARKS.md
	$(GO) run ./tests/bench/worker -parts sinks -archive-rows 1000000 -archive-max 100000 -sink-rounds 2 -out BENCHMARKS.md

report-screenshots: ## every HTML report from a seeded private PostgreSQL, as PNGs in build/report-screenshots (needs chromium: apt-get install -y chromium)
	$(GO) run ./tests/reportshots -out build/report-screenshots

bench-anchor: ## anchors: one anchor of 16 chains, and what 1,000 bundles add to a full verification of 1M rows; writes its BENCHMARKS.md section
	$(GO) run ./tests/bench/anchor -rows 1000000 -bundles 1000 -rounds 3 -out BENCHMARKS.md

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

build: ## the auditworker binary
	$(GO) build -o auditworker ./cmd/auditworker

install-extension: ## install the extension script and the C accelerator (PGXS; needs postgresql-server-dev)
	@mkdir -p $(EXT_BUILD)
	$(GO) run ./cmd/auditworker extension-script > $(EXT_BUILD)/auditdb--0.1.0.sql
	cp sql/auditdb.control $(EXT_BUILD)/
	cp sql/pgxs.mk $(EXT_BUILD)/Makefile
	cp sql/accel/auditdb_accel.c $(EXT_BUILD)/
	$(MAKE) -C $(EXT_BUILD) PG_CONFIG=$(PG_CONFIG) install

clean: ## remove build output
	rm -rf build auditworker
