// Golden logits for DeepSeek-V2/V3 shapes: deepseek2-kvb (older attn_kv_b layout, split into k_b / v_b
// at load; softmax routing) and deepseek2-mla (attn_k_b / attn_v_b; sigmoid routing with selection bias,
// normalized weights, scale 2.5) through the library. tessera always runs MLA in absorbed form (one
// latent KV head, d_k = kv_lora + rope, d_v = kv_lora), where llama.cpp ran the kvb file as plain MHA:
// the same function, so the manifest's tolerance holds for both.
#include <doctest/doctest.h>

#include "tests/golden_util.h"

using namespace tessera;
using namespace tessera::testing;
namespace golden = tessera::testing::golden;

namespace {

std::vector<golden::Case> deepseek_cases() { return golden::cases_for({"deepseek2"}); }

}  // namespace

TEST_CASE("golden deepseek2: both layouts, batch, incremental and chunked prefill, F32 cache") {
    if (!golden::have_shared()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    const auto cases = deepseek_cases();
    REQUIRE(cases.size() >= 2);  // deepseek2-kvb, deepseek2-mla
    for (const auto& c : cases) {
        auto model = Model::open(c.gguf);
        CHECK(model->hparams().arch == "deepseek2");
        golden::check_batch_incremental(*model, c, 7);
    }
}

TEST_CASE("golden deepseek2: reference backend") {
    if (!golden::have_shared()) return;
    for (const auto& c : deepseek_cases()) {
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.backend = "reference";
        golden::check_run(*model, c, o, c.tol_rel_rms, "reference batch");
    }
}

TEST_CASE("golden deepseek2: the MLA cache holds one latent row per token and layer") {
    if (!golden::have_shared()) return;
    for (const auto& c : deepseek_cases()) {
        auto model = Model::open(c.gguf);
        SessionOptions so;
        so.n_ctx = 64;
        so.cache_type = DType::F32;
        Session s(*model, so);
        // Both files: 3 layers, kv_lora 64, rope 16 -> (64 + 16) * 4 bytes * 3 layers = 960 bytes per token,
        // where per-head K and V (4 heads x (48 + 32)) would take 3840.
        CHECK(s.cache().bytes_per_token() == size_t((64 + 16) * 4 * 3));
        for (int il = 0; il < s.cache().n_layer(); ++il) {
            CHECK(s.cache().layer(il).kind == CacheKind::Latent);
            CHECK(s.cache().v(il) == nullptr);
        }
    }
}
