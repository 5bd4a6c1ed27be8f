# pyferry's one entry point for building, demonstrating, testing and measuring.
# The PYO3_* settings live in .cargo/config.toml, so plain `cargo` commands agree with these.

CARGO ?= cargo
PYTHON ?= python3
RELEASE := target/release
PYFERRY := $(RELEASE)/pyferry
DEMO_DIR := target/demo

.PHONY: build runtime toolchain demo test fuzz check fmt clippy check-freebsd bench bench-scale clean

TOOLCHAIN := target/toolchain

## build: target/release/pyferry, the runtime it finds next to itself, and the wheel of both
## (target/wheels/pyferry-VERSION-py3-none-manylinux_2_17_x86_64.whl, for pip install)
build: toolchain
	$(CARGO) build --release --locked -p pyferry -p pyferry-launcher
	$(PYFERRY) -q build-runtime --launcher $(RELEASE)/pyferry-launcher \
		--stdlib $(TOOLCHAIN)/cpython/lib/python3.11 --runtime-info $(TOOLCHAIN)/cpython/runtime.json \
		-o $(RELEASE)/pyferry-runtime
	/usr/bin/python3 wheel/build >/dev/null

## runtime: the portable CPython 3.11 (static, PIC, glibc 2.17) built from source by
## runtime/build, or found in its cache; prints its directory (runtime/README.md)
runtime:
	/usr/bin/python3 runtime/build

## toolchain: what every cargo command here links with (.cargo/config.toml): the runtime, and
## zig cc for glibc 2.17, linked into target/toolchain/ (the first time builds CPython from
## source, about 20 minutes; then it comes from the cache)
toolchain:
	/usr/bin/python3 runtime/build >/dev/null
	/usr/bin/python3 runtime/link-tools $(TOOLCHAIN) >/dev/null

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

## fuzz: damaged and foreign files with a new seed: 100,000 in-process cases of the payload
## reader and 10,000 damaged executables run as subprocesses, every region boundary (release
## build; a few minutes). Reproduce a failure with the seed and case it prints:
## PYFERRY_FUZZ_SEED=S PYFERRY_FUZZ_ONLY=N make fuzz
FUZZ_SEED ?= $(shell date +%s)
fuzz: build
	PYFERRY_FUZZ_SEED=$${PYFERRY_FUZZ_SEED:-$(FUZZ_SEED)} PYFERRY_FUZZ_CASES=100000 PYFERRY_FUZZ_RUNS=10000 \
		PYFERRY_FUZZ_BOUNDARIES=all $(CARGO) test --release --locked -p pyferry-tests --test fuzz -- --nocapture

fmt:
	$(CARGO) fmt --all -- --check

clippy: toolchain
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## check-freebsd: the launcher's FreeBSD code compiles (never run here); skipped when the
## target's standard library cannot be downloaded
check-freebsd: toolchain
	@if rustup target add x86_64-unknown-freebsd >/dev/null 2>&1; then \
		$(CARGO) check --locked --target x86_64-unknown-freebsd -p pyferry-launcher; \
	else \
		echo "check-freebsd: skipped, the x86_64-unknown-freebsd standard library is not available"; \
	fi

## check: exactly what CI runs
check: fmt clippy check-freebsd test

## bench: pyferry against PyInstaller, shiv, pex and a venv on four apps (bench/run.py: not part
## of test; needs root; under 20 min); rewrites docs/benchmarks.md and docs/benchmarks.svg.
## Options, e.g.: make bench BENCH_ARGS="--quick --apps numpy --tools pyferry,pex"
bench: build
	$(PYTHON) bench/run.py $(BENCH_ARGS)
	$(PYTHON) bench/packtime.py

## bench-scale: start-up of print('hi') with and without 500 MB of unused packages (paired
## runs; target 1.10x), and pyferry pack's wall time and peak RSS on that tree (bench/scale.py;
## not part of test). Options, e.g.: make bench-scale SCALE_ARGS="--pairs 101"
bench-scale: build
	$(PYTHON) bench/scale.py $(SCALE_ARGS)

clean:
	$(CARGO) clean
