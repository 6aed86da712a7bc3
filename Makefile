# The front door. CMake is the real build; these targets install what a fresh
# Debian machine lacks (tools/install-deps.sh), configure, build and run.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench asan fuzz fuzz-jinja install clean

all: build

deps:
	@bash tools/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash tools/demo.sh $(BUILD)

bench: build
	$(BUILD)/tessera bench matmul
	$(BUILD)/tessera bench attention

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON -DTESSERA_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer + ASan/UBSan on the GGUF reader (clang), bounded in time: make fuzz [FUZZ_SECONDS=60].
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_BUILD=$(CURDIR)/build-fuzz bash tests/fuzz/run.sh

# The same for the chat-template engine (models/jinja), seeded with ../shared/chat_templates.
fuzz-jinja:
	FUZZ_TARGET=jinja FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_BUILD=$(CURDIR)/build-fuzz bash tests/fuzz/run.sh

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
