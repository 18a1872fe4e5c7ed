# Fuse3D: see README.md. Every target installs what it needs first (scripts/setup.sh is idempotent).
SWIFT ?= swift
BIN := .build/release/fuse3d
DEMO_OUT ?= demo-out
PREFIX ?= /usr/local

.PHONY: setup build test demo bench install clean

setup:
	bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release

test: setup
	$(SWIFT) build
	$(SWIFT) test --disable-swift-testing

demo: build
	bash scripts/demo.sh $(BIN) $(DEMO_OUT)

bench: build
	bash bench/run.sh $(BIN)

install: build
	install -m 0755 $(BIN) $(PREFIX)/bin/fuse3d

clean:
	rm -rf .build $(DEMO_OUT)
