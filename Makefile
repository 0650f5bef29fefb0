# spot: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
COMPONENT_DIR := target/$(WASM_TARGET)/component
COMPONENT_PATH ?= $(COMPONENT_DIR)/spot_guest.wasm
# Components only the tests and benches load (test-components/): built for
# wasm32-wasip2 only, so kept out of the host-target `cargo test`.
TEST_COMPONENTS := spot-test-misbehave spot-test-wrong-contract spot-test-foreign-import \
	spot-test-bad-output spot-test-ingest-floor spot-test-hostile-element spot-test-hungry \
	spot-test-slow-import

.PHONY: run demo build test components toolchain browser-deps test-deps nchan-deps timescaledb fuzz-deps fuzz-build fuzz bench soak lint fmt clean

DEV_PG_DIR ?= data/postgres
DEV_PG_PORT ?= 5433

## The default component and the release server: what `run` starts and what
## the Dockerfile runs.
build: toolchain
	$(CARGO) build --profile component --target $(WASM_TARGET) -p spot-guest
	$(CARGO) build --release -p spot-host --bin spot-server

## Build the default component and the host, then run the server on
## 127.0.0.1 (HOST=0.0.0.0 opens it to the network). Without DATABASE_URL, a
## local PostgreSQL is started (and kept) under $(DEV_PG_DIR).
run: build
	@if [ -z "$$DATABASE_URL" ]; then \
		$(CARGO) build -q --release -p spot-testkit --bin spot-dev-postgres && \
		DATABASE_URL=$$(./target/release/spot-dev-postgres $(DEV_PG_DIR) $(DEV_PG_PORT)) || exit 1; \
		echo "DATABASE_URL unset: using the local PostgreSQL at $$DATABASE_URL"; \
	fi; \
	HOST=$${HOST:-127.0.0.1} DATABASE_URL=$$DATABASE_URL COMPONENT_PATH=$(COMPONENT_PATH) ./target/release/spot-server

## `make run` against the fake Coinbase (offline): a synthetic market of
## DEMO_PRODUCTS products at DEMO_RATE trades/s on 127.0.0.1:FAKE_WS_PORT (WS)
## and FAKE_REST_PORT (REST). The fake runs in its own session so that a
## Ctrl-C reaches the server alone; the fake is stopped once the server is.
DEMO_PRODUCTS ?= 5
DEMO_RATE ?= 20
FAKE_WS_PORT ?= 8701
FAKE_REST_PORT ?= 8702
demo: build
	$(CARGO) build --release -p spot-fake-coinbase --bin fake-coinbase
	@if [ -z "$$DATABASE_URL" ]; then \
		$(CARGO) build -q --release -p spot-testkit --bin spot-dev-postgres && \
		DATABASE_URL=$$(./target/release/spot-dev-postgres $(DEV_PG_DIR) $(DEV_PG_PORT)) || exit 1; \
	fi; \
	setsid ./target/release/fake-coinbase --ws 127.0.0.1:$(FAKE_WS_PORT) --rest 127.0.0.1:$(FAKE_REST_PORT) \
		--products $(DEMO_PRODUCTS) --rate $(DEMO_RATE) & fake=$$!; \
	trap "kill $$fake 2>/dev/null" EXIT; \
	echo; echo "  spot demo: open http://localhost:$${PORT:-8080}/  (Ctrl-C stops)"; echo; \
	HOST=$${HOST:-127.0.0.1} DATABASE_URL=$$DATABASE_URL COMPONENT_PATH=$(COMPONENT_PATH) \
		COINBASE_WS_URL=ws://127.0.0.1:$(FAKE_WS_PORT) COINBASE_REST_URL=http://127.0.0.1:$(FAKE_REST_PORT) \
		./target/release/spot-server

## Build everything and run every test (the browser test needs browser-deps,
## the history tests test-deps), then the storage and end-to-end tests again
## on clusters that load TimescaleDB (installed by `timescaledb` when missing).
test: components browser-deps test-deps timescaledb fuzz-build
	$(CARGO) fmt --all -- --check
	$(CARGO) test --workspace --exclude spot-guest $(addprefix --exclude ,$(TEST_COMPONENTS))
	fuzz/run.sh $(FUZZ_TEST_SECONDS)
	@if [ -e $(TIMESCALEDB_CONTROL) ]; then \
		echo "the storage and end-to-end tests again, on TimescaleDB (same packages as above: nothing is compiled again)"; \
		SPOT_TEST_TIMESCALEDB=1 $(CARGO) test --workspace --exclude spot-guest $(addprefix --exclude ,$(TEST_COMPONENTS)) \
			--test storage --test e2e; \
	else \
		echo "TimescaleDB is not installed and $(TIMESCALEDB_SRC) is missing: the TimescaleDB runs are skipped"; \
	fi

## The wasm target (idempotent; rust-toolchain.toml pins the toolchain).
toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## What the browser test (host/tests/browser.rs) drives: Debian's Chromium
## (installed with apt when missing; CHROMIUM names another binary) and
## playwright-core from npm, pinned by host/tests/browser/package-lock.json.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@test -d host/tests/browser/node_modules/playwright-core || \
		(cd host/tests/browser && npm ci --no-audit --no-fund --loglevel=error)

## What the history tests (host/tests/history.rs) fake the wall clock of the
## server process with: Debian's libfaketime (installed with apt when missing).
LIBFAKETIME := /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
test-deps:
	@test -e $(LIBFAKETIME) || { echo "installing Debian's faketime"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends faketime >/dev/null; }

## TimescaleDB for the tests: no registry here ships it, so it is built from
## the vendored source (Apache-2.0 part, ~15 s) and installed into
## PostgreSQL $(PG_MAJOR) when missing and the source is there (once per machine).
PG_MAJOR ?= 15
TIMESCALEDB_SRC ?= $(firstword $(wildcard ../shared/vendor/timescaledb-*-apache.tar.gz) ../shared/vendor/timescaledb-2.28.3-apache.tar.gz)
TIMESCALEDB_CONTROL := /usr/share/postgresql/$(PG_MAJOR)/extension/timescaledb.control
timescaledb:
	@if [ ! -e $(TIMESCALEDB_CONTROL) ] && [ -f "$(TIMESCALEDB_SRC)" ]; then \
		echo "building TimescaleDB from $(TIMESCALEDB_SRC)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			postgresql-server-dev-$(PG_MAJOR) cmake libssl-dev >/dev/null && \
		tmp=$$(mktemp -d) && tar xzf "$(TIMESCALEDB_SRC)" -C $$tmp && cd $$tmp/timescaledb-* && \
		{ ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
			-DCMAKE_BUILD_TYPE=Release -DPG_CONFIG=/usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config && \
		  cd build && $(MAKE) -j2 && $(SUDO) $(MAKE) install; } > $$tmp/build.log 2>&1 || \
		  { cat $$tmp/build.log; echo "building TimescaleDB failed (log above)"; exit 1; }; \
		rm -rf $$tmp && echo "TimescaleDB installed"; \
	fi

## Fuzzing (fuzz/): cargo-afl (AFL++ through rustc's own instrumentation:
## runs on stable), installed when missing; the instrumented targets build
## into target/afl (they cannot share the normal target directory). `make
## test` runs each target FUZZ_TEST_SECONDS over its corpus; `make fuzz`
## runs them FUZZ_SECONDS each (FUZZ_TARGETS: some only).
CARGO_AFL_VERSION := 0.18.2
FUZZ_TEST_SECONDS ?= 5
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz-deps:
	@command -v cargo-afl >/dev/null || { echo "installing cargo-afl $(CARGO_AFL_VERSION)"; \
		$(CARGO) install cargo-afl --version $(CARGO_AFL_VERSION) --locked --quiet; }

fuzz-build: fuzz-deps
	CARGO_TARGET_DIR=target/afl $(CARGO) afl build --release -p spot-fuzz --features afl

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## The default component, the example component and the misbehaving test components.
components: toolchain
	$(CARGO) build --profile component --target $(WASM_TARGET) \
		-p spot-guest -p spot-example-change $(addprefix -p ,$(TEST_COMPONENTS))
	@ls -l $(COMPONENT_DIR)/*.wasm

## Benchmarks: engine (component vs native, render, swap pause, day import),
## storage (the writer vs one upsert per row and raw UNNEST), SSE fan-out,
## feed parse throughput (vs a generic JSON parse), the whole pipeline
## under load (fake Coinbase → server → 1,000 SSE clients, increasing rates;
## then again holding a day of every product, as a running instance does),
## history (two days held: restore and RSS; the backfill of 900 products
## x a day at the default REST rate against its bound), and the fleet (a
## shard's engine output to a replica's SSE client through PostgreSQL, at
## 1,000 and 10,000 candle updates/s, against the shard's own clients).
bench: components test-deps nchan-deps
	$(CARGO) bench -p spot-host --bench engine
	$(CARGO) bench -p spot-host --bench storage
	$(CARGO) bench -p spot-host --bench fanout -- 1000 10000
	$(CARGO) bench -p spot-host --bench feed
	$(CARGO) bench -p spot-host --bench pipeline
	$(CARGO) bench -p spot-host --bench pipeline -- --stored-hours 24
	$(CARGO) bench -p spot-host --bench history
	$(CARGO) bench -p spot-host --bench fleet

## The fan-out bench's peer: Debian's nginx and libnginx-mod-nchan
## (installed with apt when missing), run privately by the bench.
nchan-deps:
	@test -x /usr/sbin/nginx && test -e /usr/lib/nginx/modules/ngx_nchan_module.so || { \
		echo "installing Debian's nginx and libnginx-mod-nchan"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends nginx libnginx-mod-nchan >/dev/null; }

## The soak (not part of test): SOAK_MINUTES at 2,000 trades/s over 900
## products, 1,000 churning SSE clients, a swap every 5 minutes; slopes of
## RSS, open fds and CPU, then every stored candle against the fake's log.
SOAK_MINUTES ?= 30
soak: components
	$(CARGO) bench -p spot-host --bench soak -- --minutes $(SOAK_MINUTES)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p spot-guest -p spot-example-change \
		$(addprefix -p ,$(TEST_COMPONENTS)) -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
