// Several sequences in one session (the server's slots): a batch that mixes prompt chunks of some sequences
// with single tokens of others gives every sequence the logits it gets alone, for every cache kind (full,
// window rings, MLA latents, sinks), every batching and chunking; a sequence can be cleared, copied
// (forked) and truncated without touching the others; a full context or a bad id in one sequence is an
// error that leaves every sequence as it was.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "models/make_model.h"
#include "models/session.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// A random-weight model of an architecture's tiny preset (F32), opened; the file is removed at once.
std::unique_ptr<Model> tiny_model(const std::string& arch) {
    MakeModelOptions o;
    o.arch = arch;
    o.preset = "tiny";
    o.type = "f32";
    const std::string path = "/tmp/tessera_batching_" + std::to_string(::getpid()) + "_" + arch + ".gguf";
    make_model(o, path);
    auto m = Model::open(path);
    std::remove(path.c_str());
    return m;
}

SessionOptions options(int n_seq, int64_t n_batch, const std::string& backend = "cpu") {
    SessionOptions o;
    o.n_ctx = 96;
    o.n_threads = 2;
    o.n_batch = n_batch;
    o.cache_type = DType::F32;
    o.backend = backend;
    o.n_seq = n_seq;
    return o;
}

// The logits of every token of `ids` decoded alone (one sequence), in chunks of 4.
std::vector<std::vector<float>> alone(const Model& m, const std::vector<int32_t>& ids, const std::string& backend) {
    SessionOptions o = options(1, 4, backend);
    o.logits_all = true;
    Session s(m, o);
    s.decode(ids.data(), int64_t(ids.size()));
    std::vector<std::vector<float>> rows;
    for (int64_t r = 0; r < s.n_logit_rows(); ++r) rows.emplace_back(s.logits(r), s.logits(r) + s.n_vocab());
    return rows;
}

std::vector<int32_t> prompt(size_t n, int32_t salt, int64_t n_vocab) {
    std::vector<int32_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = int32_t((i * 37 + size_t(salt) * 101 + 3) % size_t(n_vocab));
    return ids;
}

// One step of a schedule: `count` next tokens of sequence `seq`.
struct Take {
    int seq;
    size_t count;
};

}  // namespace

TEST_CASE("several sequences in one batch give each sequence its logits alone: every cache kind") {
    // Same F32 model, same tokens: the only differences are batch shapes (matmul panels, attention tiles and
    // splits), i.e. float summation order. 1e-4 relative rms is ~1000 ulps of room over a few layers, far
    // below what a query that saw another sequence's keys, or a key written to the wrong cell, produces
    // (the check at the end shows such a change is > 1e-2).
    for (const char* arch : {"llama", "gemma2", "gemma3", "deepseek2", "gpt-oss"}) {
        INFO(arch);
        auto model = tiny_model(arch);
        const int64_t nv = model->hparams().n_vocab;
        // Three sequences of 40, 23 and 5 tokens: past a window ring of window + n_batch - 1 cells, so
        // the rings wrap, while the short one stays inside its first tile.
        const std::vector<std::vector<int32_t>> seqs = {prompt(40, 1, nv), prompt(23, 2, nv), prompt(5, 3, nv)};
        // A schedule a server makes: a prompt chunk of one sequence beside one token of the others, the
        // sequences in shifting order; batches above n_batch (6) are cut into chunks by the session.
        const std::vector<std::vector<Take>> schedule = {
            {{0, 6}},
            {{1, 3}, {0, 1}},
            {{0, 1}, {2, 5}, {1, 4}},
            {{1, 8}, {0, 1}},
            {{0, 20}, {1, 1}},
            {{1, 7}, {0, 11}},
        };
        for (const char* backend : {"cpu", "reference"}) {
            INFO(backend);
            if (std::string(backend) == "reference" && std::string(arch) != "gemma2" &&
                std::string(arch) != "deepseek2")
                continue;  // the reference is slow: one ring model and the latent one are enough there
            Session s(*model, options(3, 6, backend));
            std::vector<std::vector<std::vector<float>>> got(seqs.size());
            std::vector<size_t> next(seqs.size(), 0);
            for (const auto& step : schedule) {
                std::vector<int32_t> tokens, ids;
                for (const Take& t : step)
                    for (size_t i = 0; i < t.count; ++i) {
                        tokens.push_back(seqs[size_t(t.seq)][next[size_t(t.seq)]++]);
                        ids.push_back(t.seq);
                    }
                std::vector<uint8_t> want(tokens.size(), 1);
                s.decode_batch(tokens.data(), ids.data(), want.data(), int64_t(tokens.size()));
                REQUIRE(s.n_logit_rows() == int64_t(tokens.size()));
                for (int64_t r = 0; r < s.n_logit_rows(); ++r) {
                    CHECK(s.logit_seq(r) == ids[size_t(r)]);
                    got[size_t(ids[size_t(r)])].emplace_back(s.logits(r), s.logits(r) + nv);
                }
            }
            for (size_t q = 0; q < seqs.size(); ++q) {
                CHECK(s.n_past(int(q)) == int64_t(seqs[q].size()));
                const auto want = alone(*model, seqs[q], backend);
                REQUIRE(got[q].size() == want.size());
                for (size_t i = 0; i < want.size(); ++i) {
                    INFO("sequence " << q << " token " << i);
                    CHECK(rel_rms(got[q][i], want[i]) < 1e-4);
                }
            }
            // The bound can fail: another sequence's token at the same position differs by far more.
            CHECK(rel_rms(got[1][4], got[0][4]) > 1e-2);
        }
    }
}

TEST_CASE("sequences: the default logits are each sequence's last token; clear, copy and truncate") {
    auto model = tiny_model("gemma2");  // window layers as rings: the copy must carry the ring's state
    const int64_t nv = model->hparams().n_vocab;
    const std::vector<int32_t> shared = prompt(30, 4, nv), tail_a = prompt(9, 5, nv), tail_b = prompt(4, 6, nv);
    Session s(*model, options(4, 8));

    // Default rows: the last token of each sequence in the call, in token order.
    std::vector<int32_t> tokens = {shared[0], shared[1], shared[0], shared[2]};
    std::vector<int32_t> ids = {0, 0, 3, 0};
    s.decode_batch(tokens.data(), ids.data(), nullptr, 4);
    REQUIRE(s.n_logit_rows() == 2);
    CHECK(s.logit_seq(0) == 3);
    CHECK(s.logit_seq(1) == 0);
    s.clear_seq(3);
    CHECK(s.n_past(3) == 0);
    CHECK(s.n_past(0) == 3);

    // The shared prefix once in sequence 0, forked into 2; each continues its own way.
    std::vector<int32_t> rest(shared.begin() + 3, shared.end()), zeros(rest.size(), 0);
    s.decode_batch(rest.data(), zeros.data(), nullptr, int64_t(rest.size()));
    s.copy_seq(0, 2);
    CHECK(s.n_past(2) == int64_t(shared.size()));
    tokens.clear();
    ids.clear();
    for (size_t i = 0; i < std::max(tail_a.size(), tail_b.size()); ++i) {
        if (i < tail_a.size()) tokens.push_back(tail_a[i]), ids.push_back(0);
        if (i < tail_b.size()) tokens.push_back(tail_b[i]), ids.push_back(2);
    }
    s.decode_batch(tokens.data(), ids.data(), nullptr, int64_t(tokens.size()));
    REQUIRE(s.n_logit_rows() == 2);
    std::vector<int32_t> full_a = shared, full_b = shared;
    full_a.insert(full_a.end(), tail_a.begin(), tail_a.end());
    full_b.insert(full_b.end(), tail_b.begin(), tail_b.end());
    const std::vector<float> last_b(s.logits(0), s.logits(0) + nv), last_a(s.logits(1), s.logits(1) + nv);
    CHECK(s.logit_seq(0) == 2);  // tail_b ends first in token order
    CHECK(rel_rms(last_a, alone(*model, full_a, "cpu").back()) < 1e-4);
    CHECK(rel_rms(last_b, alone(*model, full_b, "cpu").back()) < 1e-4);

    // Truncating one sequence back into its ring's slack and going on equals that sequence alone.
    s.truncate(2, 32);
    const int32_t t = tail_a[0];
    const int32_t two = 2;
    s.decode_batch(&t, &two, nullptr, 1);
    std::vector<int32_t> cut(full_b.begin(), full_b.begin() + 32);
    cut.push_back(t);
    CHECK(rel_rms(std::vector<float>(s.logits(0), s.logits(0) + nv), alone(*model, cut, "cpu").back()) < 1e-4);
    CHECK(s.n_past(0) == int64_t(full_a.size()));  // untouched
}

TEST_CASE("sequences: a full context or a bad sequence id is an error that changes no sequence") {
    auto model = tiny_model("llama");
    const int64_t nv = model->hparams().n_vocab;
    Session s(*model, options(2, 8));
    const std::vector<int32_t> a = prompt(90, 7, nv), b = prompt(10, 8, nv);
    std::vector<int32_t> ids(a.size(), 0);
    s.decode_batch(a.data(), ids.data(), nullptr, int64_t(a.size()));
    // 90 + 7 > 96 in sequence 0, beside 10 tokens of sequence 1 that would fit.
    std::vector<int32_t> tokens(b), seqs(b.size(), 1);
    for (int i = 0; i < 7; ++i) tokens.push_back(b[size_t(i)]), seqs.push_back(0);
    try {
        s.decode_batch(tokens.data(), seqs.data(), nullptr, int64_t(tokens.size()));
        FAIL("a full context was accepted");
    } catch (const Error& e) {
        CHECK(e.status() == Status::ContextFull);
        CHECK(std::string(e.what()).find("sequence 0") != std::string::npos);
    }
    CHECK(s.n_past(0) == 90);
    CHECK(s.n_past(1) == 0);
    // A sequence id outside [0, n_seq): refused, naming it.
    const int32_t bad = 2;
    CHECK_THROWS_WITH(s.decode_batch(b.data(), &bad, nullptr, 1), doctest::Contains("sequence 2"));
    CHECK_THROWS_AS(s.copy_seq(0, 5), Error);
    CHECK_THROWS_AS(s.clear_seq(-1), Error);
    // The sessions of one sequence refuse attention capture with several.
    SessionOptions o = options(2, 8);
    o.capture_attention = true;
    CHECK_THROWS_AS(Session(*model, o), Error);
}
