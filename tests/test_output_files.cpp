// Files the tools write must never destroy what is at the output path by mistake: a device node, a FIFO or
// the input file itself is refused, a symlink is written through (the link stays), and a large model is
// written one tensor at a time. Each case here failed before its fix.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/types.h"
#include "models/make_model.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// A fresh directory for one test case, removed with what it holds at the end.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/tessera_test_output_XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { run_command("rm -rf '" + path + "'"); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

bool is_fifo(const std::string& p) {
    struct stat st;
    return lstat(p.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}
bool is_symlink(const std::string& p) {
    struct stat st;
    return lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}
// Files in dir whose names start with prefix (the writer's leftover temporaries would).
int count_with_prefix(const TempDir& dir, const std::string& prefix) {
    std::string out;
    run_command("ls -a '" + dir.path + "'", &out);
    int n = 0;
    for (size_t at = 0; (at = out.find(prefix, at)) != std::string::npos; ++at) ++n;
    return n;
}

void small_writer(GGUFWriter& w, const std::vector<float>& values) {
    w.set_str("general.architecture", "test");
    w.add_tensor("t", DType::F32, {int64_t(values.size())}, values.data(), values.size() * 4);
}

std::string cli(const std::string& args, int* status) {
    std::string out;
    *status = run_command(cli_path() + " " + args, &out);
    return out;
}

std::string tiny_model(const TempDir& dir) { return make_small_llama(dir / "tiny.gguf", 256); }

}  // namespace

TEST_CASE("gguf writer: a FIFO, a directory or a dangling link at the output path is refused and left as it was") {
    TempDir dir;
    const std::vector<float> values{1, 2, 3, 4};
    GGUFWriter w;
    small_writer(w, values);

    const std::string fifo = dir / "fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
    const std::string err = error_of([&] { w.write(fifo); });
    CHECK(err.find("is a FIFO") != std::string::npos);
    CHECK(is_fifo(fifo));

    CHECK(error_of([&] { w.write(dir.path); }).find("is a directory") != std::string::npos);

    const std::string dangling = dir / "dangling";
    REQUIRE(symlink((dir / "nowhere").c_str(), dangling.c_str()) == 0);
    CHECK(error_of([&] { w.write(dangling); }).find("cannot be followed") != std::string::npos);
    CHECK(is_symlink(dangling));

    // A link to a FIFO is as much a FIFO.
    const std::string to_fifo = dir / "to_fifo";
    REQUIRE(symlink(fifo.c_str(), to_fifo.c_str()) == 0);
    CHECK(error_of([&] { w.write(to_fifo); }).find("is a FIFO") != std::string::npos);
    CHECK(is_fifo(fifo));
    CHECK(count_with_prefix(dir, ".tmp.") == 0);
}

TEST_CASE("gguf writer: a character device is refused and not replaced") {
    // A node of its own (/dev/null's numbers) in a temporary directory: a writer that got this wrong must
    // not be able to replace the system's /dev/null.
    TempDir dir;
    const std::string dev = dir / "null";
    if (mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
        MESSAGE("skipped: cannot make a device node here (" << std::strerror(errno) << ")");
        return;
    }
    GGUFWriter w;
    small_writer(w, {1, 2});
    CHECK(error_of([&] { w.write(dev); }).find("is a character device") != std::string::npos);
    struct stat st;
    REQUIRE(lstat(dev.c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("gguf writer: a symlink is written through: the target gets the file, the link stays a link") {
    TempDir dir;
    const std::string real = dir / "real.gguf", link = dir / "link.gguf";
    { std::ofstream(real) << "old contents"; }
    REQUIRE(chmod(real.c_str(), 0600) == 0);
    REQUIRE(symlink("real.gguf", link.c_str()) == 0);  // relative, as links often are
    const std::vector<float> values{5, 6, 7};
    GGUFWriter w;
    small_writer(w, values);
    w.write(link);
    CHECK(is_symlink(link));
    auto f = GGUFFile::open(real);
    REQUIRE(f->find_tensor("t") != nullptr);
    CHECK(std::memcmp(f->find_tensor("t")->data, values.data(), 12) == 0);
    struct stat st;
    REQUIRE(stat(real.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // the replaced file keeps its permissions
}

TEST_CASE("gguf writer: tensors made by a Fill at write time give the same file as tensors given as bytes") {
    TempDir dir;
    const std::vector<float> a{1, 2, 3, 4, 5}, b{-1, -2};
    GGUFWriter given, filled;
    for (GGUFWriter* w : {&given, &filled}) w->set_str("general.architecture", "test");
    given.add_tensor("a", DType::F32, {5}, a.data(), 20);
    given.add_tensor("b", DType::F32, {2}, b.data(), 8);
    int calls = 0;
    CHECK(filled.add_tensor("a", DType::F32, {5}, [&](uint8_t* dst) { ++calls, std::memcpy(dst, a.data(), 20); }) == 20);
    CHECK(filled.add_tensor("b", DType::F32, {2}, [&](uint8_t* dst) { ++calls, std::memcpy(dst, b.data(), 8); }) == 8);
    CHECK(calls == 0);  // nothing is made before write()
    given.write(dir / "given.gguf");
    filled.write(dir / "filled.gguf");
    CHECK(calls == 2);
    CHECK(read_file(dir / "given.gguf") == read_file(dir / "filled.gguf"));

    // A Fill that fails leaves no file and no temporary behind.
    GGUFWriter failing;
    failing.add_tensor("x", DType::F32, {4}, [](uint8_t*) { throw Error("no data today"); });
    CHECK(error_of([&] { failing.write(dir / "failed.gguf"); }) == "no data today");
    CHECK(access((dir / "failed.gguf").c_str(), F_OK) != 0);
    CHECK(count_with_prefix(dir, "failed.gguf") == 0);
}

// Peak resident memory (VmHWM) after resetting it through /proc/self/clear_refs; 0 where that is not allowed.
long peak_rss_kb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}
bool reset_peak_rss() {
    std::ofstream refs("/proc/self/clear_refs");
    return refs.good() && (refs << "5").flush().good();
}

TEST_CASE("make-model: a model is written one tensor at a time, not held in memory whole") {
    TempDir dir;
    MakeModelOptions o;
    o.type = "f32";
    o.has_shape = true;
    o.shape = llama_preset("tiny");
    o.shape.n_embd = 512, o.shape.n_ff = 2048, o.shape.n_head = 8, o.shape.n_head_kv = 8, o.shape.n_layer = 8;
    // 8 layers x (4 x 512^2 + 3 x 512 x 2048) f32 = 128 MiB of weights; the largest tensor is 4 MiB.
    if (!reset_peak_rss()) {
        MESSAGE("skipped: /proc/self/clear_refs cannot reset the peak RSS here");
        return;
    }
    const long before = peak_rss_kb();
    const MadeModel m = make_model(o, dir / "big.gguf");
    const long grew_mib = (peak_rss_kb() - before) / 1024;
    REQUIRE(m.file_bytes > (size_t(125) << 20));
    INFO("peak RSS grew by " << grew_mib << " MiB while writing " << (m.file_bytes >> 20) << " MiB");
    CHECK(grew_mib < 48);
    CHECK(GGUFFile::open(dir / "big.gguf")->tensors().size() == 8 * 9 + 3);
}

TEST_CASE("make-model: random Q4_K and Q6_K tensors, made as blocks, have the values' spread and are repeatable") {
    // Q4_K / Q6_K rows are drawn as blocks (not quantized from floats): their dequantized values must still
    // be uniform-like on [-a, a] with standard deviation sd, as the f32 and Q8_0 tensors are.
    TempDir dir;
    const float sd = 0.02f, a = sd * std::sqrt(3.0f);
    const std::vector<DType> types{DType::F32, DType::Q8_0, DType::Q4_K, DType::Q6_K};
    GGUFWriter w, again;
    for (DType t : types) {
        add_random_tensor(w, std::string("w_") + type_name(t), t, {512, 96}, sd, 7);
        add_random_tensor(again, std::string("w_") + type_name(t), t, {512, 96}, sd, 7);
    }
    w.write(dir / "w.gguf");
    again.write(dir / "again.gguf");
    CHECK(read_file(dir / "w.gguf") == read_file(dir / "again.gguf"));
    auto f = GGUFFile::open(dir / "w.gguf");
    for (DType t : types) {
        const std::string name = std::string("w_") + type_name(t);
        INFO(name);
        const auto* info = f->find_tensor(name);
        REQUIRE(info != nullptr);
        std::vector<float> v(512 * 96);
        type_traits(t).to_float(info->data, v.data(), int64_t(v.size()));
        double sum = 0, sum2 = 0, lo = 0, hi = 0;
        for (float x : v) sum += x, sum2 += double(x) * x, lo = std::min<double>(lo, x), hi = std::max<double>(hi, x);
        const double mean = sum / double(v.size()), dev = std::sqrt(sum2 / double(v.size()) - mean * mean);
        // 49152 values: the sample sd of a uniform is within ~0.3 % of sd, its mean within ~0.5 % of sd
        // (one standard error); 2 % and 3 % leave room for the grids' rounding (Q4_K's 16 levels are
        // spread to sd exactly, Q6_K's mean is -b / 64).
        CHECK(std::abs(dev / sd - 1.0) < 0.02);
        CHECK(std::abs(mean) < 0.03 * sd);
        CHECK(lo >= -a * 1.001);
        CHECK(hi <= a * 1.001);
        CHECK(hi - lo > 1.8 * a);  // the values fill the range
    }
}

TEST_CASE("quantize and make-model: a FIFO output is refused and stays a FIFO; a symlink is written through") {
    TempDir dir;
    const std::string model = tiny_model(dir), fifo = dir / "fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
    int status = 0;
    std::string out = cli("quantize " + model + " " + fifo + " q8_0", &status);
    CHECK(status == 1);
    CHECK(out.find("is a FIFO") != std::string::npos);
    CHECK(is_fifo(fifo));
    out = cli("make-model -o " + fifo, &status);
    CHECK(status == 1);
    CHECK(out.find("is a FIFO") != std::string::npos);
    CHECK(is_fifo(fifo));

    const std::string real = dir / "q.gguf", link = dir / "q_link.gguf";
    { std::ofstream(real) << "placeholder"; }
    REQUIRE(symlink(real.c_str(), link.c_str()) == 0);
    out = cli("quantize " + model + " " + link + " q8_0", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(is_symlink(link));
    CHECK(GGUFFile::open(real)->get<uint32_t>("general.file_type") == 7);
}

TEST_CASE("quantize: the output may not be the input, and a quantized input needs --allow-requantize") {
    TempDir dir;
    const std::string model = tiny_model(dir);
    const auto original = read_file(model);
    int status = 0;
    std::string out = cli("quantize " + model + " " + model + " q8_0", &status);
    CHECK(status == 1);
    CHECK(out.find("is the input file") != std::string::npos);
    // The same file through another name (a hard link) is the same file.
    const std::string hard = dir / "hard.gguf";
    REQUIRE(link(model.c_str(), hard.c_str()) == 0);
    out = cli("quantize " + model + " " + hard + " q8_0", &status);
    CHECK(status == 1);
    CHECK(out.find("is the input file") != std::string::npos);
    CHECK(read_file(model) == original);

    const std::string q8 = dir / "q8.gguf", q4 = dir / "q4.gguf";
    REQUIRE(cli("quantize " + model + " " + q8 + " q8_0", &status).size() > 0);
    REQUIRE(status == 0);
    out = cli("quantize " + q8 + " " + q4 + " q4_0", &status);
    CHECK(status == 1);
    CHECK(out.find("--allow-requantize") != std::string::npos);
    CHECK(access(q4.c_str(), F_OK) != 0);
    out = cli("quantize --allow-requantize " + q8 + " " + q4 + " q4_0", &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(GGUFFile::open(q4)->get<uint32_t>("general.file_type") == 2);
}

TEST_CASE("quantize: a file without tensors is an error") {
    TempDir dir;
    GGUFWriter w;
    w.set_str("general.architecture", "llama");
    w.write(dir / "vocab_only.gguf");
    int status = 0;
    const std::string out = cli("quantize " + (dir / "vocab_only.gguf") + " " + (dir / "out.gguf") + " q8_0", &status);
    CHECK(status == 1);
    CHECK(out.find("no tensors") != std::string::npos);
    CHECK(access((dir / "out.gguf").c_str(), F_OK) != 0);
}

TEST_CASE("eval --logits-out: checked before computing, with the system's reason; no partial file on failure") {
    TempDir dir;
    const std::string model = tiny_model(dir);
    int status = 0;
    std::string out = cli("eval -m " + model + " --tokens '1 2 3' --logits-out " + (dir / "missing/logits.bin"), &status);
    CHECK(status == 1);
    CHECK(out.find("No such file or directory") != std::string::npos);
    CHECK(out.find("cache") == std::string::npos);  // refused before a session (and its cache line) was made
    // A device is not a logits file (writing to a full one would fail only after all the work). A node of
    // our own with /dev/full's numbers, so a regression cannot touch the system's.
    const std::string full = dir / "full";
    if (mknod(full.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
        out = cli("eval -m " + model + " --tokens '1 2 3' --logits-out " + full, &status);
        CHECK(status == 1);
        CHECK(out.find("not a regular file") != std::string::npos);
    }
    // A failed evaluation leaves no empty file behind.
    out = cli("eval -m " + model + " --tokens '1 99999' --logits-out " + (dir / "l.bin"), &status);
    CHECK(status == 1);
    CHECK(access((dir / "l.bin").c_str(), F_OK) != 0);
    out = cli("eval -m " + model + " --tokens '1 2 3' --logits-out " + (dir / "l.bin"), &status);
    CHECK(status == 0);
    CHECK(read_file(dir / "l.bin").size() == 3 * 1024 * sizeof(float));
}
