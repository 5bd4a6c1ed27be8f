# pyferry's one entry point for building, demonstrating, testing and measuring.
# The PYO3_* settings live in .cargo/config.toml, so plain `cargo` commands agree with these.

CARGO ?= cargo
PYTHON ?= python3
RELEASE := target/release
PYFERRY := $(RELEASE)/pyferry
DEMO_DIR := target/demo

.PHONY: build demo test check fmt clippy check-freebsd bench clean

## build: target/release/pyferry and the runtime it finds next to itself
build:
	$(CARGO) build --release --locked -p pyferry -p pyferry-launcher
	$(PYFERRY) -q build-runtime --launcher $(RELEASE)/pyferry-launcher -o $(RELEASE)/pyferry-runtime

## demo: pack examples/numpy-demo with numpy from the package index, and run it
demo: build
	rm -rf $(DEMO_DIR)/app && mkdir -p $(DEMO_DIR)/app
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--only-binary=:all: --target $(DEMO_DIR)/app -r examples/numpy-demo/requirements.txt
	cp examples/numpy-demo/__main__.py $(DEMO_DIR)/app/
	$(PYFERRY) pack $(DEMO_DIR)/app -o $(DEMO_DIR)/numpy-demo
	ls -l $(DEMO_DIR)/numpy-demo
	./$(DEMO_DIR)/numpy-demo

## test: unit tests and end-to-end tests (real executables, real wheels)
test: build
	$(CARGO) test --workspace --locked

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## check-freebsd: the launcher's FreeBSD code compiles (never run here); skipped when the
## target's standard library cannot be downloaded
check-freebsd:
	@if rustup target add x86_64-unknown-freebsd >/dev/null 2>&1; then \
		$(CARGO) check --locked --target x86_64-unknown-freebsd -p pyferry-launcher; \
	else \
		echo "check-freebsd: skipped, the x86_64-unknown-freebsd standard library is not available"; \
	fi

## check: exactly what CI runs
check: fmt clippy check-freebsd test

## bench: start-up benchmarks (not part of test)
bench: build
	$(PYTHON) bench/run.py

clean:
	$(CARGO) clean
