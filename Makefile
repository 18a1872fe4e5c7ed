# Fuse3D: see README.md. Every target installs what it needs first (scripts/setup.sh is idempotent).
SWIFT ?= swift
BIN := .build/release/fuse3d
DEMO_OUT ?= demo-out
PREFIX ?= /usr/local
# The libtorch bridge: built against the project's .venv torch unless PYTHON=/path/to/python (its
# PyTorch) or LIBTORCH=/path/to/libtorch is given (see docs/own-pytorch.md).
PYTHON ?=
LIBTORCH ?=
TORCH_SHIM := .build/torch/libfuse3d_torch.so
CTORCH := Sources/CTorch
SHIM_INPUTS := $(CTORCH)/torch_api.cpp $(CTORCH)/torch_distributed.cpp $(CTORCH)/shim_support.h $(CTORCH)/include/ctorch.h $(CTORCH)/ctorch_functions.h scripts/build-torch-shim.sh
DIST_OUT ?= dist

.PHONY: setup stubs torch build test demo bench dist wheel wheel-test install clean fuzz fuzz-build

setup:
	bash scripts/setup.sh

# The bridge's function table, generated from ctorch.h (rewritten only when it changes).
stubs:
	python3 scripts/gen_torch_stubs.py

$(CTORCH)/ctorch_functions.h: $(CTORCH)/include/ctorch.h scripts/gen_torch_stubs.py
	python3 scripts/gen_torch_stubs.py

$(TORCH_SHIM): $(SHIM_INPUTS) | setup
	OUT=$@ PYTHON="$(PYTHON)" LIBTORCH="$(LIBTORCH)" bash scripts/build-torch-shim.sh

# Always rebuilds: the chosen PyTorch may have changed although the sources did not.
torch: setup stubs
	OUT=$(TORCH_SHIM) PYTHON="$(PYTHON)" LIBTORCH="$(LIBTORCH)" bash scripts/build-torch-shim.sh

build: setup stubs $(TORCH_SHIM)
	$(SWIFT) build -c release

test: setup stubs $(TORCH_SHIM)
	$(SWIFT) build
	$(SWIFT) test --disable-swift-testing

demo: build
	bash scripts/demo.sh $(BIN) $(DEMO_OUT)

bench: build
	bash bench/run.sh $(BIN)

# A relocatable folder and tarball for Linux x86-64 (static Swift runtime, Debian libraries beside it).
dist: setup stubs
	bash scripts/dist.sh $(DIST_OUT)

# dist/fuse3d-VERSION-py3-none-manylinux_2_N_x86_64.whl: the bundle above, its libraries grafted, the libtorch
# bridge for the .venv's (or PYTHON's) torch, and python/fuse3d (pip install dist/fuse3d-*.whl).
wheel: setup stubs
	PYTHON="$(PYTHON)" bash scripts/wheel.sh $(DIST_OUT)

# The wheel in dist/ installed into a fresh venv from local wheels, with torch: CLI from PATH and the Python API.
wheel-test: wheel
	bash scripts/test-wheel.sh --wheel $$(ls $(DIST_OUT)/fuse3d-*.whl) --torch

install: build
	install -m 0755 $(BIN) $(PREFIX)/bin/fuse3d
	install -m 0755 $(TORCH_SHIM) $(PREFIX)/bin/libfuse3d_torch.so

# libFuzzer over one file's header walk, decode, geometry and fusion (Sources/FuzzDICOM): a debug build of its own
# (.build-fuzz) with -sanitize=fuzzer,address on the Swift side and ASan + UBSan + libFuzzer coverage on the C and
# C++ targets; the target exists only under FUSE3D_FUZZ=1, so `swift build` and `swift test` never build it. The
# corpus is seeded once by scripts/fuzz_seeds.py (pydicom's files of every transfer syntax, and `fuse3d synth`
# output when FUZZ_FUSE3D is built); crashes land in FUZZ_ARTIFACTS. Replay one: $(FUZZ_BIN) FILE. To go on past
# crashes and collect them all: make fuzz FUZZ_FLAGS="-fork=1 -ignore_crashes=1 -rss_limit_mb=4096 -timeout=30".
# SWIFT_BACKTRACE=enable=no: the Swift runtime's in-process backtracer would read memory that ASan reports.
FUZZ_SECONDS ?= 60
FUZZ_CORPUS ?= .build-fuzz/corpus
FUZZ_ARTIFACTS ?= .build-fuzz/artifacts/
FUZZ_FLAGS ?= -rss_limit_mb=4096 -timeout=30
FUZZ_FUSE3D ?= $(firstword $(wildcard .build/release/fuse3d .build/debug/fuse3d))
FUZZ_PYTHON ?= $(or $(FUSE3D_VENV),.venv)/bin/python
FUZZ_BIN := .build-fuzz/debug/fuse3d-fuzz-dicom
FUZZ_SAN := address,undefined,fuzzer-no-link

fuzz-build:
	FUSE3D_FUZZ=1 $(SWIFT) build -c debug --build-path .build-fuzz --product fuse3d-fuzz-dicom \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUSE3D_LIBFUZZER \
		-Xcc -fsanitize=$(FUZZ_SAN) -Xcc -fno-sanitize=vptr -Xcxx -fsanitize=$(FUZZ_SAN) -Xcxx -fno-sanitize=vptr

fuzz: fuzz-build
	$(FUZZ_PYTHON) scripts/fuzz_seeds.py $(FUZZ_CORPUS) $(FUZZ_FUSE3D)
	mkdir -p $(FUZZ_ARTIFACTS)
	SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=Sources/FuzzDICOM/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(FUZZ_BIN) $(FUZZ_CORPUS) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_ARTIFACTS) $(FUZZ_FLAGS)

clean:
	rm -rf .build .build-fuzz $(DEMO_OUT) $(DIST_OUT)
