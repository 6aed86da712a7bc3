# The front door. CMake is the real build; these targets install what a fresh
# Debian machine lacks (tools/install-deps.sh), configure, build and run.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-arm64 demo bench asan tsan fuzz fuzz-jinja install clean

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
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer on the concurrency test (threads with their own sessions on one shared model). OpenMP
# (libgomp is not instrumented) only makes the test's model file: one thread there. A Debug build (-O0):
# the run checks the threads, not speed, and the library compiles in a fraction of an optimized build's time.
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTESSERA_TSAN=ON -DTESSERA_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target test_capi_threads
	cd $(TSAN_BUILD) && OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./tests/test_capi_threads

# libFuzzer + ASan/UBSan (clang), bounded in time: make fuzz [FUZZ_TARGET=gguf|tokenizer|chat_template|jinja|sampler]
# [FUZZ_SECONDS=60].
fuzz:
	FUZZ_TARGET=$(or $(FUZZ_TARGET),gguf) FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_BUILD=$(CURDIR)/build-fuzz \
	  bash tests/fuzz/run.sh

# The chat-template engine alone (models/jinja), seeded with ../shared/chat_templates.
fuzz-jinja:
	FUZZ_TARGET=jinja FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_BUILD=$(CURDIR)/build-fuzz bash tests/fuzz/run.sh

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(ARM64_BUILD) build-fuzz

# The aarch64 build, cross-compiled and run under qemu-aarch64 (-cpu max: every ARM kernel level):
# test_ops, test_cpu_kernels, test_attention, test_golden, test_tokenizer. Installs what it lacks first.
ARM64_BUILD ?= build-arm64
test-arm64:
	@bash tools/install-deps.sh arm64
	JOBS=$(JOBS) bash tools/test-arm64.sh $(ARM64_BUILD)
