# spot: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
COMPONENT_DIR := target/$(WASM_TARGET)/component
COMPONENT_PATH ?= $(COMPONENT_DIR)/spot_guest.wasm

.PHONY: run test components toolchain bench lint fmt clean

## Build the default component and the host, then run the server.
run: components
	$(CARGO) build --release -p spot-host --bin spot-server
	COMPONENT_PATH=$(COMPONENT_PATH) ./target/release/spot-server

## Build everything and run every test.
test: components
	$(CARGO) fmt --all -- --check
	$(CARGO) test --workspace --exclude spot-guest \
		--exclude spot-test-misbehave --exclude spot-test-wrong-contract --exclude spot-test-foreign-import

## The wasm target (idempotent; rust-toolchain.toml pins the toolchain).
toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## The default component and the misbehaving test components.
components: toolchain
	$(CARGO) build --profile component --target $(WASM_TARGET) \
		-p spot-guest -p spot-test-misbehave -p spot-test-wrong-contract -p spot-test-foreign-import
	@ls -l $(COMPONENT_DIR)/*.wasm

## Engine benchmarks: component vs native, render, swap pause, day import.
bench: components
	$(CARGO) bench -p spot-host --bench engine

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p spot-guest -p spot-test-misbehave \
		-p spot-test-wrong-contract -p spot-test-foreign-import -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
