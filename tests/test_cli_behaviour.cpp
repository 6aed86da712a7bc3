// What a user of llama.cpp's tools expects from tessera's commands: run stops cleanly at the context's end,
// -n -1 runs until then, llama.cpp's flag spellings work, --seed -1 is a random (printed) seed, -p - reads
// stdin, eval stays inside the training context unless told, and the small messages say the right thing.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "core/gguf.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/tessera_test_behaviour_XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { run_command("rm -rf '" + path + "'"); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// stdout and stderr together.
std::string cli(const std::string& args, int* status) {
    std::string out;
    *status = run_command(cli_path() + " " + args, &out);
    return out;
}
// stdout alone (stderr discarded): the generated text.
std::string cli_stdout(const std::string& args, int* status, const std::string& stdin_text = "") {
    std::string out;
    const std::string input = stdin_text.empty() ? "" : "printf '%s' '" + stdin_text + "' | ";
    *status = run_command("{ " + input + cli_path() + " " + args + " 2>/dev/null; }", &out);
    return out;
}
bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("run: reaching the context stops cleanly with a note, and -n -1 runs until then") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 48);
    int status = 0;
    const std::string out = cli("run -m " + model + " -p 'once upon' -n -1 --ignore-eos --temp 0 -t 1", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(has(out, "context full"));
    CHECK(has(out, "generated: "));
    // Asked for more than fits: the same clean stop.
    CHECK(has(cli("run -m " + model + " -p 'once upon' -n 500 --ignore-eos --temp 0 -t 1", &status), "context full"));
    CHECK(status == 0);
}

TEST_CASE("run: -p - reads the prompt from stdin and -f FILE from a file; both give -p TEXT's output") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    const std::string common = "run -m " + model + " -n 8 --temp 0 -t 1";
    int status = 0;
    const std::string direct = cli_stdout(common + " -p 'the cat sat'", &status);
    REQUIRE(status == 0);
    REQUIRE(!direct.empty());
    CHECK(cli_stdout(common + " -p -", &status, "the cat sat") == direct);
    CHECK(status == 0);
    { std::ofstream(dir / "prompt.txt") << "the cat sat"; }
    CHECK(cli_stdout(common + " -f " + (dir / "prompt.txt"), &status) == direct);
    CHECK(status == 0);
    CHECK(has(cli(common + " -f " + dir.path, &status), "is not a regular file"));
    CHECK(status == 2);
}

TEST_CASE("run: llama.cpp's spellings (--ctx-size, --batch-size, --predict, -s, --repeat_penalty) are accepted") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    int status = 0;
    const std::string out = cli("run -m " + model +
                                    " -p hi --ctx-size 64 --batch-size 16 --predict 4 -s 7 --repeat_penalty 1.1 "
                                    "--repeat_last_n 16 --top_k 20 --temp 0 -t 1",
                                &status);
    INFO(out);
    CHECK(status == 0);
    // -ngl belongs with --device cuda; here its spelling is checked through the help.
    std::string help;
    REQUIRE(run_command(cli_path() + " run --help", &help) == 0);
    CHECK(has(help, "-ngl, --gpu-layers, --n-gpu-layers N"));
}

TEST_CASE("run: --seed -1 draws a random seed and prints it; other negatives are refused") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    int status = 0;
    const std::string out = cli("run -m " + model + " -p hi -n 2 --seed -1 -t 1", &status);
    CHECK(status == 0);
    CHECK(has(out, "seed: "));
    CHECK(has(cli("run -m " + model + " -p hi -n 2 --seed -2", &status), "--seed"));
    CHECK(status == 2);
}

TEST_CASE("threads above the hardware's count get a warning") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    int status = 0;
    const std::string out = cli("run -m " + model + " -p hi -n 2 -t 1000", &status);
    CHECK(status == 0);
    CHECK(has(out, "warning: --threads 1000 is more than the"));
    // Capped at twice the hardware's count.
    const unsigned hw = std::thread::hardware_concurrency();
    CHECK(has(out, "; using " + std::to_string(2 * hw) + "\n"));
}

TEST_CASE("eval: stays inside the training context unless -c asks, and then warns") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 16);
    std::string ids;
    for (int i = 0; i < 20; ++i) ids += std::to_string(10 + i) + " ";
    int status = 0;
    std::string out = cli("eval -m " + model + " --tokens '" + ids + "' --logits-out " + (dir / "l.bin"), &status);
    CHECK(status == 1);
    CHECK(has(out, "more than the model's training context (16)"));
    out = cli("eval -m " + model + " -c 32 --tokens '" + ids + "' --logits-out " + (dir / "l.bin"), &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(has(out, "warning: -c 32 is more than the model's training context (16)"));
}

TEST_CASE("chat: an unknown /command is not sent to the model") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    std::string out;
    const int status = run_command("printf '/frobnicate now\\n/exit\\n' | " + cli_path() + " chat -m " + model +
                                       " --template chatml -t 1",
                                   &out);
    INFO(out);
    CHECK(status == 0);
    CHECK(has(out, "unknown command '/frobnicate'"));
}

TEST_CASE("bench: -m without a bandwidth figure prints none (JSON null); bench matmul -m FILE says what -m is") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    int status = 0;
    std::string out = cli("bench -m " + model + " -p 8 -n 4 -r 1 -t 1 --no-bandwidth --json", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(has(out, "\"bandwidth_gb_per_s\": null"));
    CHECK(!has(out, "\"bandwidth_gb_per_s\": 0.000"));
    out = cli("bench -m " + model + " -p 0 -n 4 -r 1 -t 1 --no-bandwidth", &status);
    CHECK(status == 0);
    CHECK(!has(out, "% of 0.0 GB/s"));
    out = cli("bench matmul -m " + model, &status);
    CHECK(status == 2);
    CHECK(has(out, "tessera bench -m MODEL"));
}

TEST_CASE("bench -m: the bandwidth buffer is sized to the model (a 1 MB model does not touch 2 GiB)") {
    TempDir dir;
    const std::string model = make_small_llama(dir / "m.gguf", 256);
    int status = 0;
    const std::string out = cli("bench -m " + model + " -p 8 -n 4 -r 1 -t 1", &status);
    INFO(out);
    REQUIRE(status == 0);
    // The largest resident size of any finished child of this test (the commands above are all small).
    rusage children{};
    REQUIRE(getrusage(RUSAGE_CHILDREN, &children) == 0);
    const long peak_mib = children.ru_maxrss / 1024;
    INFO("peak RSS of the bench: " << peak_mib << " MiB");
    CHECK(peak_mib < 1024);
    CHECK(peak_mib >= 256);  // the 256 MiB floor was touched: the measurement ran
}

TEST_CASE("make-model and inspect: messages name the right architecture, once") {
    TempDir dir;
    int status = 0;
    std::string out = cli("make-model --preset gemma-tiny -o " + (dir / "g.gguf"), &status);
    CHECK(status == 0);
    CHECK(has(out, "g.gguf: gemma gemma-tiny"));
    out = cli("make-model --arch mamba -o " + (dir / "x.gguf"), &status);
    CHECK(status == 1);
    CHECK(has(out, "gemma"));
    CHECK(!has(out, "make-model: make-model:"));
    CHECK(!has(out, "error: make-model:"));
    out = cli("make-model --arch gemma2 --preset nope -o " + (dir / "x.gguf"), &status);
    CHECK(status == 1);
    CHECK(has(out, "gemma2-2b"));
    CHECK(!has(out, "deepseek"));
    out = cli("inspect -m " + (dir / "g.gguf"), &status);
    CHECK(status == 0);
    CHECK(has(out, "gemma"));
}

TEST_CASE("make-model killed while writing leaves neither a partial file nor its temporary") {
    // A 1.1B-parameter f32 file takes seconds to write, so the signal lands mid-write: the temporary
    // FILE.tmp.XXXXXX exists and FILE does not yet. SIGTERM, because a shell's background job ignores
    // SIGINT (and the handler then keeps it ignored); both signals share the same handler.
    TempDir dir;
    const std::string out_file = dir / "big.gguf";
    const std::string script = cli_path() + " make-model --preset tinyllama-1.1b --type f32 -o " + out_file +
                               " 2>/dev/null & pid=$!; "
                               "for i in $(seq 400); do ls " + dir.path + " | grep -q tmp && break; sleep 0.05; done; "
                               "ls " + dir.path + " | grep -q tmp && echo saw-temporary; sleep 0.3; "
                               "kill -TERM $pid; wait $pid; echo status=$?; ls " + dir.path;
    std::string out;
    run_command(script, &out);
    INFO(out);
    REQUIRE(has(out, "saw-temporary"));
    CHECK(has(out, "status=143"));  // ended by SIGTERM, as without the handler
    CHECK(!has(out, "tmp"));
    CHECK(!has(out, "big.gguf"));
}

TEST_CASE("tokenize -f DIR is an error; help columns stay aligned") {
    int status = 0;
    CHECK(has(cli("tokenize -m x.gguf -f /tmp", &status), "is not a regular file"));
    CHECK(status == 2);
    std::string help;
    REQUIRE(run_command(cli_path() + " run --help", &help) == 0);
    // The device flag's left column is too wide for its place: its help starts on the next line.
    CHECK(has(help, "--device, --backend NAME\n"));
}

TEST_CASE("run: a vocabulary-only file says it has no weights") {
    TempDir dir;
    GGUFWriter w;
    w.set_str("general.architecture", "llama");
    w.write(dir / "vocab.gguf");
    int status = 0;
    const std::string out = cli("run -m " + (dir / "vocab.gguf") + " -p hi", &status);
    CHECK(status == 1);
    CHECK(has(out, "has no weights"));
}
