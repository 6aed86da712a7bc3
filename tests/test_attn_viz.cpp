// Attention maps (models/attention_maps.h, the C API's tessera_attention_map, `tessera attn-viz`): the
// probabilities recomputed from the captured queries and keys are a distribution over exactly the keys
// the op lets a query see, and multiplied by the captured values they give the op's own output. Checked
// on golden files of each head mapping and mask kind: GQA (llama), sliding windows and softcap (gemma2),
// MLA (deepseek2).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <stb/stb_image.h>

#include "models/model.h"
#include "models/session.h"
#include "tessera.h"
#include "testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

std::vector<int32_t> some_tokens(int64_t n_vocab, int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 7919 + 13) % n_vocab));
    return ids;
}

// Every captured record of a decode: rows are distributions over the visible cells, invisible cells 0,
// and p . V equals the op's output.
void check_records(const Session& s, int64_t expect_layers) {
    const auto& chunks = s.attention_records();
    REQUIRE(!chunks.empty());
    for (const auto& chunk : chunks) {
        REQUIRE(int64_t(chunk.size()) == expect_layers);
        for (const AttentionRecord& r : chunk) {
            const int64_t group = r.n_head / r.n_kv_head;
            for (int64_t h = 0; h < r.n_head; ++h)
                for (int64_t i = 0; i < r.n_query; ++i) {
                    const std::vector<double> p = r.probabilities(h, i);
                    double sum = 0, worst = 0, scale = 0;
                    int visible = 0;
                    for (int64_t j = 0; j < r.n_cell; ++j) {
                        const int64_t qp = r.q_pos[size_t(i)], kp = r.k_pos[size_t(j)];
                        const bool sees = kp >= 0 && (!r.spec.causal || kp <= qp) &&
                                          (r.spec.window == 0 || qp - kp < r.spec.window);
                        if (!sees) CHECK(p[size_t(j)] == 0.0);
                        visible += sees;
                        sum += p[size_t(j)];
                    }
                    if (visible == 0) continue;
                    CHECK(sum == doctest::Approx(1.0).epsilon(1e-9));
                    for (int64_t c = 0; c < r.d_v; ++c) {
                        double acc = 0;
                        for (int64_t j = 0; j < r.n_cell; ++j)
                            acc += p[size_t(j)] * r.v[size_t((j * r.n_kv_head + h / group) * r.d_v + c)];
                        const double op = r.out[size_t((i * r.n_head + h) * r.d_v + c)];
                        worst = std::max(worst, std::abs(acc - op));
                        scale = std::max(scale, std::abs(op));
                    }
                    CHECK_MESSAGE(worst <= 1e-4 * std::max(1.0, scale), "head " << h << " row " << i);
                }
        }
    }
}

}  // namespace

TEST_CASE("captured attention recomputes the op's output: GQA, windows + softcap, MLA") {
    if (!shared_available()) return;
    for (const std::string file : {"golden/llama-gqa.gguf", "golden/gemma2.gguf", "golden/deepseek2-mla.gguf"}) {
        CAPTURE(file);
        auto model = Model::open(shared_path(file));
        SessionOptions so;
        so.n_ctx = 64;
        so.n_threads = 2;
        so.n_batch = 16;  // 40 tokens: three chunks, the later ones reading earlier chunks' keys
        so.cache_type = DType::F32;
        so.capture_attention = true;
        Session s(*model, so);
        const auto ids = some_tokens(model->hparams().n_vocab, 40);
        s.decode(ids.data(), int64_t(ids.size()));
        CHECK(s.attention_records().size() >= 3);  // more where a window ring caps the chunk
        check_records(s, model->hparams().n_layer);
    }
}

TEST_CASE("tessera_attention_map: causal rows over key positions, the same in one chunk or several") {
    if (!shared_available()) return;
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_open(shared_path("golden/gemma2.gguf").c_str(), nullptr, &m) == TESSERA_OK);
    const auto ids = some_tokens(tessera_model_n_vocab(m), 30);
    std::vector<std::vector<float>> maps;
    for (int batch : {512, 7}) {
        tessera_session_params sp = tessera_session_default_params();
        sp.n_ctx = 64;
        sp.n_batch = batch;
        sp.cache_type = TESSERA_CACHE_F32;
        sp.capture_attention = 1;
        tessera_session* s = nullptr;
        REQUIRE(tessera_session_create(m, &sp, &s) == TESSERA_OK);
        CHECK(tessera_attention_n_layers(s) == 0);  // nothing decoded yet
        REQUIRE(tessera_decode(s, ids.data(), int32_t(ids.size())) == TESSERA_OK);
        REQUIRE(tessera_attention_n_layers(s) == tessera_model_n_layer(m));
        int32_t n_head = 0, n_kv = 0, window = 0, nq = 0, nk = 0, first = 0;
        REQUIRE(tessera_attention_layer_info(s, 0, &n_head, &n_kv, &window) == TESSERA_OK);
        CHECK(window > 0);  // gemma2's layer 0 slides
        CHECK(tessera_attention_map(s, 0, 0, nullptr, 0, &nq, &nk, &first) == TESSERA_ERR_BUFFER_TOO_SMALL);
        CHECK(nq == 30);
        CHECK(nk == 30);
        CHECK(first == 0);
        std::vector<float> probs(size_t(nq) * size_t(nk));
        REQUIRE(tessera_attention_map(s, 0, n_head - 1, probs.data(), probs.size(), &nq, &nk, &first) == TESSERA_OK);
        for (int i = 0; i < nq; ++i) {
            double sum = 0;
            for (int j = 0; j < nk; ++j) {
                const float p = probs[size_t(i * nk + j)];
                if (j > i || i - j >= window) CHECK(p == 0.0f);  // the future, and outside the window
                sum += p;
            }
            CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        }
        maps.push_back(probs);
        CHECK(tessera_attention_map(s, 99, 0, probs.data(), probs.size(), &nq, &nk, &first) ==
              TESSERA_ERR_INVALID_ARGUMENT);
        CHECK(std::string(tessera_last_error()).find("layer 99") != std::string::npos);
        CHECK(tessera_attention_map(s, 0, n_head, probs.data(), probs.size(), &nq, &nk, &first) ==
              TESSERA_ERR_INVALID_ARGUMENT);
        tessera_session_free(s);
    }
    REQUIRE(maps[0].size() == maps[1].size());
    double worst = 0;
    for (size_t i = 0; i < maps[0].size(); ++i) worst = std::max(worst, double(std::abs(maps[0][i] - maps[1][i])));
    CHECK(worst < 1e-4);
    tessera_model_free(m);
}

TEST_CASE("tessera attn-viz writes a PNG of the size it reports, and --json per-map statistics") {
    if (!shared_available()) return;
    const std::string png = "test_attn_viz.png";
    std::string out;
    const std::string cmd = cli_path() + " attn-viz -m " + shared_path("models/stories260K.gguf") +
                            " -p 'Once upon a time, there was a little girl.' --layers 0,2-3 --heads 1 -o " + png +
                            " --json";
    REQUIRE_MESSAGE(run_command(cmd, &out) == 0, out);
    std::smatch size;
    REQUIRE_MESSAGE(std::regex_search(out, size, std::regex("\\((\\d+) x (\\d+) pixels, 3 layers\\)")), out);
    int w = 0, h = 0, comp = 0;
    unsigned char* pixels = stbi_load(png.c_str(), &w, &h, &comp, 3);
    REQUIRE(pixels != nullptr);
    CHECK(w == std::stoi(size[1]));
    CHECK(h == std::stoi(size[2]));
    stbi_image_free(pixels);
    std::remove(png.c_str());
    // --json: one entry per shown map, with the layer and head asked for
    const std::regex entropy("\"entropy\"");
    const auto n_maps = std::distance(std::sregex_iterator(out.begin(), out.end(), entropy), std::sregex_iterator());
    CHECK(n_maps == 3);
    CHECK(out.find("{\"layer\": 2, \"head\": 1,") != std::string::npos);

    std::string bad;
    CHECK(run_command(cli_path() + " attn-viz -m " + shared_path("models/stories260K.gguf") +
                          " -p hi --layers 0,9 -o x.png",
                      &bad) == 2);
    CHECK(bad.find("--layers: '9' is outside 0-4") != std::string::npos);
}
