# Cairn — build, run and test. Needs only Go; everything else is installed
# here, pinned, into $(CACHE_DIR) (outside the checkout, so a second run and a
# fresh clone on the same machine reuse it).

GO            ?= go
CACHE_DIR     ?= $(HOME)/.cache/cairn
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_BIN     := $(CACHE_DIR)/minio-7aac2a2c5b7c/minio
TEST_TIMEOUT  ?= 60m
ADDR          ?= 127.0.0.1:7070

# A second Arrow implementation (JavaScript apache-arrow, pinned by its
# lockfile) reads our segments in snapshot's interop test.
ARROWJS       := snapshot/testdata/arrowjs/node_modules/.package-lock.json

# Other readers of segment files (snapshot's TestInterop, docs/segments.md's
# example): nodejs-polars pinned by its lockfile, and arrow-go v18 in a Go
# module of its own (its modules fetched here, before the tests).
POLARS        := snapshot/testdata/polars/node_modules/.package-lock.json

# DuckDB (npm, pinned by its lockfile) runs SQL over `cairn export`'s Parquet.
DUCKDB        := cmd/cairn/testdata/duckdb/node_modules/.package-lock.json

# A second validator of template.yaml: the CloudFormation validation engine
# inside aws-cdk-lib (pinned by its lockfile), run by functions' template test.
CFNLINT       := functions/testdata/cfnlint/node_modules/.package-lock.json

# The pinned Redocly CLI lints functions/api/openapi.yaml (TestOpenAPILint).
REDOCLY       := functions/api/testdata/redocly/node_modules/.package-lock.json

# Tests find MinIO through this variable (infra/miniotest).
export CAIRN_MINIO_BIN := $(MINIO_BIN)

.PHONY: run test bench minio fmt-check vet fuzz clean mutants

## run: start Cairn locally on its embedded filesystem store (./.cairn-data).
run:
	@echo "building cairn; the first build compiles every dependency (the AWS SDK, Arrow: a few minutes), later ones take seconds"
	$(GO) run ./cmd/cairn serve --addr $(ADDR)

## test: vet, formatting, and every test (race detector on) against the
## embedded stores and a real MinIO that the harness starts by itself.
test: $(MINIO_BIN) $(ARROWJS) $(POLARS) $(DUCKDB) interop-modules $(CFNLINT) $(REDOCLY) fmt-check vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) mutants

## mutants: the mutation check. Every patch in .ci/mutants breaks one WAL
## protocol rule and must make a torture fail with an invariant violation
## (docs/protocol.md, "Mutation check"); `make mutants M="a b"` runs some.
mutants:
	.ci/mutation-check $(M)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## minio: build the pinned MinIO (about 4 minutes the first time; only when missing).
minio: $(MINIO_BIN)

$(MINIO_BIN):
	@echo "building MinIO $(MINIO_VERSION) into $(dir $(MINIO_BIN)) (first time only, ~4 min)"
	mkdir -p $(dir $(MINIO_BIN))
	GOBIN=$(dir $(MINIO_BIN)) GOFLAGS=-buildvcs=false $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(ARROWJS): snapshot/testdata/arrowjs/package-lock.json
	npm ci --prefix snapshot/testdata/arrowjs --no-audit --no-fund

$(POLARS): snapshot/testdata/polars/package-lock.json
	npm ci --prefix snapshot/testdata/polars --no-audit --no-fund

$(DUCKDB): cmd/cairn/testdata/duckdb/package-lock.json
	npm ci --prefix cmd/cairn/testdata/duckdb --no-audit --no-fund

.PHONY: interop-modules
interop-modules:
	cd snapshot/testdata/arrowgo18 && $(GO) mod download

$(CFNLINT): functions/testdata/cfnlint/package-lock.json
	npm ci --prefix functions/testdata/cfnlint --no-audit --no-fund

$(REDOCLY): functions/api/testdata/redocly/package-lock.json
	npm ci --prefix functions/api/testdata/redocly --no-audit --no-fund

## fuzz: run every fuzz target of FUZZPKGS (default: the whole repository)
## for FUZZTIME each. Targets are found with `go test -list`, so a new one is
## never left out. What a run finds lands in the package's testdata/fuzz/.
FUZZTIME ?= 30s
FUZZPKGS ?= ./...
fuzz:
	@set -e; list=$$($(GO) test -list '^Fuzz' $(FUZZPKGS)); \
	targets=$$(printf '%s\n' "$$list" | awk '/^Fuzz/ { t[n++] = $$1; next } /^ok / { for (i = 0; i < n; i++) print $$2 "=" t[i]; n = 0 }'); \
	[ -n "$$targets" ] || { echo "no fuzz targets in $(FUZZPKGS)"; exit 1; }; \
	for pt in $$targets; do \
		echo "== $${pt%%=*} $${pt#*=} ($(FUZZTIME))"; \
		$(GO) test "$${pt%%=*}" -run '^$$' -fuzz "^$${pt#*=}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s; \
	done

## bench: `cairn bench` on a private MinIO the harness starts: every figure
## next to the raw store doing the same work, each target met or missed; a
## table on standard output and bench.json (README.md, "Benchmarks").
## BENCH_DURATION is each side of each comparison (a run: ~20 times it + 1 min).
BENCH_DURATION ?= 5s
bench: $(MINIO_BIN)
	$(GO) run ./cmd/cairn bench --store minio --duration $(BENCH_DURATION) --out bench.json

clean:
	rm -rf .cairn-data bin

## Lambda functions. `sam build` runs build-<LogicalId> (BuildMethod:
## makefile) with ARTIFACTS_DIR set; `make lambdas` builds all four into
## bin/<function>/bootstrap.
ARTIFACTS_DIR ?= bin
LAMBDA_FUNCTIONS := node coordinator snapshot maintenance

.PHONY: build-NodeFunction build-CoordinatorFunction build-SnapshotFunction build-MaintenanceFunction lambdas fuzz-api

build-NodeFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/node

build-CoordinatorFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/coordinator

build-SnapshotFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/snapshot

build-MaintenanceFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/maintenance

lambdas:
	$(MAKE) build-NodeFunction ARTIFACTS_DIR=bin/node
	$(MAKE) build-CoordinatorFunction ARTIFACTS_DIR=bin/coordinator
	$(MAKE) build-SnapshotFunction ARTIFACTS_DIR=bin/snapshot
	$(MAKE) build-MaintenanceFunction ARTIFACTS_DIR=bin/maintenance

## fuzz-api: only the HTTP API's fuzz targets, FUZZTIME each.
fuzz-api:
	$(MAKE) fuzz FUZZPKGS=./functions/api
