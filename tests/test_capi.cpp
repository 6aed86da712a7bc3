// The C API: status codes and messages instead of exceptions, metadata, tokens, decoding, logits,
// sampling, truncation, a full context. Runs on a model made by make_model (no /work/shared needed)
// and on stories260K when present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/gguf.h"
#include "tessera.h"
#include "tests/testing.h"

using namespace tessera::testing;

namespace {

// tests/testing.cpp is compiled once into tessera_test_main, which does not get the TESSERA_SHARED_DIR /
// TESSERA_CLI definitions that each test executable gets, so its shared_file() and cli() fall back
// to relative names (and under ctest, whose working directory is build/tests, /work/shared looks
// missing). This file does get the definitions, so it builds the paths itself.
std::string shared_file(const std::string& rel) { return std::string(TESSERA_SHARED_DIR) + "/" + rel; }
bool have_shared() { return ::access(TESSERA_SHARED_DIR "/golden/manifest.json", R_OK) == 0; }

// A small random llama file, made once per process.
const std::string& made_model() {
    static std::string path =
        tessera::testing::make_small_llama("/tmp/tessera_test_capi_" + std::to_string(::getpid()) + ".gguf", 64);
    return path;
}

struct Cleanup {
    ~Cleanup() { std::remove(made_model().c_str()); }
};

int argmax(const float* row, int n) { return int(std::max_element(row, row + n) - row); }

}  // namespace

TEST_CASE("capi: errors are status codes with messages, never crashes") {
    tessera_model* m = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_model_open("/nonexistent/x.gguf", nullptr, &m) == TESSERA_ERR_FILE);
    CHECK(m == nullptr);
    CHECK(std::string(tessera_last_error()).find("/nonexistent/x.gguf") != std::string::npos);
    CHECK(tessera_model_open(nullptr, nullptr, &m) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_model_open("x", nullptr, nullptr) == TESSERA_ERR_INVALID_ARGUMENT);

    // Not a GGUF file at all.
    const std::string junk = "/tmp/tessera_test_capi_junk_" + std::to_string(::getpid());
    FILE* f = std::fopen(junk.c_str(), "wb");
    std::fputs("not a model", f);
    std::fclose(f);
    CHECK(tessera_model_open(junk.c_str(), nullptr, &m) == TESSERA_ERR_FILE);
    CHECK(std::string(tessera_last_error()).find(junk) != std::string::npos);
    std::remove(junk.c_str());

    tessera_session* s = nullptr;
    CHECK(tessera_session_create(nullptr, nullptr, &s) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_decode(nullptr, nullptr, 1) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_get_logits(nullptr, 0) == nullptr);
    tessera_model_free(nullptr);  // no-ops
    tessera_session_free(nullptr);
    tessera_sampler_free(nullptr);
    CHECK(std::string(tessera_status_name(TESSERA_ERR_CONTEXT_FULL)) == "context full");
}

TEST_CASE("capi: a made model: metadata, decode, logits, sampling, truncation, full context") {
    Cleanup cleanup;
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_open(made_model().c_str(), nullptr, &m) == TESSERA_OK);
    CHECK(std::string(tessera_model_arch(m)) == "llama");
    CHECK(tessera_model_n_vocab(m) == 1024);
    CHECK(tessera_model_n_embd(m) == 256);
    CHECK(tessera_model_n_layer(m) == 2);
    CHECK(tessera_model_n_ctx_train(m) == 64);
    CHECK(tessera_model_bos(m) == 1);
    CHECK(tessera_model_eos(m) == 2);
    CHECK(tessera_model_is_eog(m, 2) == 1);
    CHECK(tessera_model_size(m) > tessera_model_decode_bytes(m));
    char buf[64];
    CHECK(tessera_model_meta_str(m, "general.architecture", buf, sizeof buf) == 5);
    CHECK(std::string(buf) == "llama");
    CHECK(tessera_model_meta_str(m, "llama.block_count", buf, sizeof buf) > 0);
    CHECK(std::string(buf) == "2");
    CHECK(tessera_model_meta_str(m, "no.such.key", buf, sizeof buf) == -1);
    char tiny[3];
    CHECK(tessera_model_meta_str(m, "general.architecture", tiny, sizeof tiny) == 5);  // full length, truncated copy
    CHECK(std::string(tiny) == "ll");

    tessera_session_params sp = tessera_session_default_params();
    sp.n_ctx = 16;
    sp.n_threads = 2;
    sp.cache_type = TESSERA_CACHE_F32;
    sp.logits_all = 1;
    tessera_session* s = nullptr;
    REQUIRE(tessera_session_create(m, &sp, &s) == TESSERA_OK);
    CHECK(tessera_session_n_ctx(s) == 16);
    CHECK(tessera_session_cache_bytes_per_token(s) == 2u * 2u * 64u * 4u);  // 2 layers x K,V x (2 heads x 32) x f32
    CHECK(tessera_session_cache_bytes(s) == 16u * tessera_session_cache_bytes_per_token(s));

    const tessera_token ids[] = {1, 300, 301, 302, 303};
    REQUIRE(tessera_decode(s, ids, 5) == TESSERA_OK);
    CHECK(tessera_session_n_past(s) == 5);
    CHECK(tessera_n_logit_rows(s) == 5);
    const float* last = tessera_get_logits(s, -1);
    REQUIRE(last != nullptr);
    CHECK(last == tessera_get_logits(s, 4));
    CHECK(tessera_get_logits(s, 5) == nullptr);
    CHECK(std::string(tessera_last_error()).find("row 5") != std::string::npos);
    const int want = argmax(last, 1024);

    // Greedy sampling is the argmax of the last row.
    tessera_sampler_params gp = tessera_sampler_default_params();
    gp.temperature = 0.0f;
    tessera_sampler* greedy = nullptr;
    REQUIRE(tessera_sampler_create(m, &gp, &greedy) == TESSERA_OK);
    tessera_token tok = -1;
    REQUIRE(tessera_sample(greedy, s, &tok) == TESSERA_OK);
    CHECK(tok == want);

    // Seeded sampling repeats itself.
    tessera_sampler_params tp = tessera_sampler_default_params();
    tp.temperature = 1.5f;
    tp.top_k = 0;
    tp.top_p = 1.0f;
    tp.min_p = 0.0f;
    tp.seed = 42;
    std::vector<tessera_token> draws[2];
    for (auto& d : draws) {
        tessera_sampler* smp = nullptr;
        REQUIRE(tessera_sampler_create(m, &tp, &smp) == TESSERA_OK);
        for (int i = 0; i < 20; ++i) {
            tessera_token t;
            REQUIRE(tessera_sample(smp, s, &t) == TESSERA_OK);
            CHECK((t >= 0 && t < 1024));
            d.push_back(t);
        }
        tessera_sampler_free(smp);
    }
    CHECK(draws[0] == draws[1]);
    CHECK(std::count(draws[0].begin(), draws[0].end(), draws[0][0]) < 20);  // it does draw, not argmax

    tessera_sampler_params bad = tessera_sampler_default_params();
    bad.top_p = 0.0f;
    tessera_sampler* bs = nullptr;
    CHECK(tessera_sampler_create(m, &bad, &bs) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("top_p") != std::string::npos);

    // Truncate to the first 3 and decode again: the same logits as a fresh run of that sequence.
    REQUIRE(tessera_session_truncate(s, 3) == TESSERA_OK);
    const tessera_token tail[] = {303, 302};
    REQUIRE(tessera_decode(s, tail, 2) == TESSERA_OK);
    std::vector<float> a(tessera_get_logits(s, 1), tessera_get_logits(s, 1) + 1024);
    tessera_session* s2 = nullptr;
    REQUIRE(tessera_session_create(m, &sp, &s2) == TESSERA_OK);
    const tessera_token seq[] = {1, 300, 301, 303, 302};
    REQUIRE(tessera_decode(s2, seq, 5) == TESSERA_OK);
    std::vector<float> b(tessera_get_logits(s2, 4), tessera_get_logits(s2, 4) + 1024);
    CHECK(closeness(a, b, 1e-5, 1e-4) <= 1.0);
    CHECK(tessera_session_truncate(s, 99) == TESSERA_ERR_INVALID_ARGUMENT);

    // A full context: a status, the session unchanged.
    std::vector<tessera_token> many(12, 7);
    CHECK(tessera_decode(s, many.data(), 12) == TESSERA_ERR_CONTEXT_FULL);
    CHECK(std::string(tessera_last_error()).find("context full") != std::string::npos);
    CHECK(tessera_session_n_past(s) == 5);
    CHECK(tessera_session_reset(s) == TESSERA_OK);
    CHECK(tessera_session_n_past(s) == 0);

    // Bad ids and bad cache types are errors, not crashes.
    const tessera_token bad_id = 5000;
    CHECK(tessera_decode(s, &bad_id, 1) == TESSERA_ERR_INVALID_ARGUMENT);
    tessera_session_params sq = sp;
    sq.cache_type = static_cast<tessera_cache_type>(9);
    tessera_session* s3 = nullptr;
    CHECK(tessera_session_create(m, &sq, &s3) == TESSERA_ERR_INVALID_ARGUMENT);
    sq = sp;
    sq.backend = "no-such-backend";
    CHECK(tessera_session_create(m, &sq, &s3) == TESSERA_ERR_UNSUPPORTED);
    CHECK(std::string(tessera_last_error()).find("no-such-backend") != std::string::npos);
    // GPU layers asked of a host backend: the caller's argument, not the file's fault.
    tessera_model_params layered = tessera_model_default_params();
    layered.gpu_layers = 1;
    tessera_model* m2 = nullptr;
    CHECK(tessera_model_open(made_model().c_str(), &layered, &m2) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("not a GPU") != std::string::npos);
    CHECK(m2 == nullptr);

    // Text round trip on the synthesized vocabulary (bytes fall back to <0xNN> tokens).
    tessera_token toks[64];
    int32_t n = 0;
    REQUIRE(tessera_tokenize(m, "hello world", -1, 1, 0, toks, 64, &n) == TESSERA_OK);
    REQUIRE(n >= 2);
    CHECK(toks[0] == 1);  // BOS
    char text[128];
    size_t len = 0;
    REQUIRE(tessera_detokenize(m, toks + 1, n - 1, text, sizeof text, &len) == TESSERA_OK);
    CHECK(std::string(text, len) == "hello world");
    int32_t n_small = 0;
    CHECK(tessera_tokenize(m, "hello world", -1, 1, 0, toks, 1, &n_small) == TESSERA_ERR_BUFFER_TOO_SMALL);
    CHECK(n_small == n);
    CHECK(tessera_token_to_piece(m, 99999, text, sizeof text, &len) != TESSERA_OK);

    tessera_sampler_free(greedy);
    tessera_session_free(s2);
    tessera_session_free(s);
    tessera_model_free(m);
}

TEST_CASE("capi: stories260K: text in, greedy text out") {
    if (!have_shared()) {
        MESSAGE("skipped: /work/shared is missing");
        return;
    }
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_open(shared_file("models/stories260K.gguf").c_str(), nullptr, &m) == TESSERA_OK);
    tessera_token toks[32];
    int32_t n = 0;
    REQUIRE(tessera_tokenize(m, "Once upon a time", -1, 1, 0, toks, 32, &n) == TESSERA_OK);
    // generations.json: [1, 403, 407, 261, 378]
    REQUIRE(n == 5);
    CHECK(toks[0] == 1);
    CHECK(toks[1] == 403);
    CHECK(toks[4] == 378);
    tessera_session_params sp = tessera_session_default_params();
    sp.n_ctx = 128;
    sp.n_threads = 2;
    sp.cache_type = TESSERA_CACHE_F32;
    tessera_session* s = nullptr;
    REQUIRE(tessera_session_create(m, &sp, &s) == TESSERA_OK);
    REQUIRE(tessera_decode(s, toks, n) == TESSERA_OK);
    tessera_sampler_params gp = tessera_sampler_default_params();
    gp.temperature = 0.0f;
    tessera_sampler* smp = nullptr;
    REQUIRE(tessera_sampler_create(m, &gp, &smp) == TESSERA_OK);
    std::vector<tessera_token> out;
    for (int i = 0; i < 12; ++i) {
        tessera_token t;
        REQUIRE(tessera_sample(smp, s, &t) == TESSERA_OK);
        out.push_back(t);
        REQUIRE(tessera_decode(s, &t, 1) == TESSERA_OK);
    }
    char text[256];
    size_t len = 0;
    REQUIRE(tessera_detokenize(m, out.data(), int32_t(out.size()), text, sizeof text, &len) == TESSERA_OK);
    // The start of llama.cpp's greedy continuation in generations.json.
    CHECK(std::string(text, len).find(", there was a little girl named Lily") != std::string::npos);
    tessera_sampler_free(smp);
    tessera_session_free(s);
    tessera_model_free(m);
}

TEST_CASE("capi: vocab-only open: tokens work, a session is refused with a reason") {
    tessera_model* m = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_vocab_open(nullptr, &m) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(m == nullptr);
    CHECK(tessera_vocab_open("x", nullptr) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_vocab_open("/nonexistent/v.gguf", &m) == TESSERA_ERR_FILE);
    CHECK(std::string(tessera_last_error()).find("/nonexistent/v.gguf") != std::string::npos);
    CHECK(tessera_model_is_vocab_only(nullptr) == 0);
    CHECK(tessera_token_to_piece_ext(nullptr, 0, 1, nullptr, 0, nullptr) == TESSERA_ERR_INVALID_ARGUMENT);
    if (!have_shared()) {
        MESSAGE("skipped the vocab file part: /work/shared is missing");
        return;
    }
    REQUIRE(tessera_vocab_open(shared_file("vocab/ggml-vocab-gpt-2.gguf").c_str(), &m) == TESSERA_OK);
    CHECK(tessera_model_is_vocab_only(m) == 1);
    CHECK(tessera_model_n_vocab(m) == 50257);  // GPT-2's published vocabulary size
    CHECK(tessera_model_n_layer(m) == 0);
    CHECK(tessera_model_size(m) == 0);
    tessera_token toks[8];
    int32_t n = 0;
    REQUIRE(tessera_tokenize(m, "Hello", -1, 0, 0, toks, 8, &n) == TESSERA_OK);
    REQUIRE(n == 1);
    CHECK(toks[0] == 15496);  // "Hello" in GPT-2's vocabulary
    CHECK(tessera_model_meta_str(m, "tokenizer.ggml.model", nullptr, 0) == 4);  // "gpt2"
    tessera_session* s = reinterpret_cast<tessera_session*>(1);
    CHECK(tessera_session_create(m, nullptr, &s) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(s == nullptr);
    CHECK(std::string(tessera_last_error()).find("vocab-only") != std::string::npos);
    tessera_model_free(m);

    // Control tokens: plain pieces hide them, render_special shows their text.
    REQUIRE(tessera_model_open(shared_file("models/stories260K.gguf").c_str(), nullptr, &m) == TESSERA_OK);
    CHECK(tessera_model_is_vocab_only(m) == 0);
    char buf[16];
    size_t len = 99;
    REQUIRE(tessera_token_to_piece_ext(m, 1, 1, buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(std::string(buf, len) == "<s>");
    REQUIRE(tessera_token_to_piece_ext(m, 1, 0, buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(len == 0);
    CHECK(tessera_token_to_piece_ext(m, 1, 1, buf, 2, &len) == TESSERA_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 3);
    CHECK(tessera_token_to_piece_ext(m, 100000, 1, buf, sizeof buf, &len) == TESSERA_ERR_INVALID_ARGUMENT);
    tessera_model_free(m);
}

TEST_CASE("capi: chat formats by name, bad input, buffer sizes") {
    const char* name = nullptr;
    CHECK(tessera_chat_template_resolve(nullptr, "chatml", nullptr) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_chat_template_resolve(nullptr, nullptr, &name) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_chat_template_resolve(nullptr, "no-such-format", &name) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(name == nullptr);
    CHECK(std::string(tessera_last_error()).find("no-such-format") != std::string::npos);
    REQUIRE(tessera_chat_template_resolve(nullptr, "chatml", &name) == TESSERA_OK);
    CHECK(std::string(name) == "chatml");
    CHECK(std::string(tessera_chat_template_names()).find("llama3") != std::string::npos);

    const tessera_chat_message msgs[] = {{"system", "Be brief."}, {"user", "hi"}};
    // ChatML as its format defines it (each turn <|im_start|>role\n...<|im_end|>\n, then the assistant's header).
    const std::string want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                             "<|im_start|>assistant\n";
    size_t needed = 0;
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "chatml", nullptr, 0, &needed) == TESSERA_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == want.size());
    std::vector<char> small(want.size());  // one byte short: no room for the NUL
    small[0] = 'x';
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "chatml", small.data(), small.size(), &needed) ==
          TESSERA_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == want.size());
    CHECK(small[0] == '\0');
    std::vector<char> buf(want.size() + 1);
    REQUIRE(tessera_chat_format(nullptr, msgs, 2, 1, "chatml", buf.data(), buf.size(), &needed) == TESSERA_OK);
    CHECK(std::string(buf.data()) == want);
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "chatml", buf.data(), buf.size(), nullptr) ==
          TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_chat_format(nullptr, nullptr, 2, 1, "chatml", buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "bogus", buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("bogus") != std::string::npos);
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, nullptr, buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);  // neither a model nor a name
    const tessera_chat_message bad_role[] = {{"wizard", "x"}};
    CHECK(tessera_chat_format(nullptr, bad_role, 1, 1, "chatml", buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);
    const tessera_chat_message null_content[] = {{"user", nullptr}};
    CHECK(tessera_chat_format(nullptr, null_content, 1, 1, "chatml", buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);

    if (!have_shared()) {
        MESSAGE("skipped the detection part: /work/shared is missing");
        return;
    }
    // Phi-3's vocabulary: its own template is used without a name, and renders Phi-3's format.
    tessera_model* m = nullptr;
    REQUIRE(tessera_vocab_open(shared_file("vocab/ggml-vocab-phi-3.gguf").c_str(), &m) == TESSERA_OK);
    REQUIRE(tessera_chat_template_resolve(m, nullptr, &name) == TESSERA_OK);
    CHECK(std::string(name) == "jinja");
    const tessera_chat_message user[] = {{"user", "hi"}};
    REQUIRE(tessera_chat_format(m, user, 1, 1, nullptr, buf.data(), buf.size(), &needed) == TESSERA_OK);
    CHECK(std::string(buf.data()) == "<|user|>\nhi<|end|>\n<|assistant|>\n");
    // The named format still overrides it.
    REQUIRE(tessera_chat_format(m, user, 1, 1, "chatml", buf.data(), buf.size(), &needed) == TESSERA_OK);
    CHECK(std::string(buf.data()) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    tessera_model_free(m);
    // stories260K has no chat template and no chat markers: UNSUPPORTED, naming the way out.
    REQUIRE(tessera_model_open(shared_file("models/stories260K.gguf").c_str(), nullptr, &m) == TESSERA_OK);
    CHECK(tessera_chat_template_resolve(m, nullptr, &name) == TESSERA_ERR_UNSUPPORTED);
    CHECK(std::string(tessera_last_error()).find("--chat-template") != std::string::npos);
    CHECK(tessera_chat_template_resolve(m, "jinja", &name) == TESSERA_ERR_INVALID_ARGUMENT);  // it has none
    tessera_model_free(m);
}

TEST_CASE("capi: stop matcher holds back a stop string split across pushes") {
    tessera_stop_matcher* sm = reinterpret_cast<tessera_stop_matcher*>(1);
    const char* stops[] = {"<|im_end|>", "STOP"};
    CHECK(tessera_stop_matcher_create(stops, 2, nullptr) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_stop_matcher_create(nullptr, 1, &sm) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(sm == nullptr);
    const char* empty[] = {""};
    CHECK(tessera_stop_matcher_create(empty, 1, &sm) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_stop_matcher_create_chat(nullptr, "nope", &sm) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_stop_matcher_stopped(nullptr) == 0);
    const char* out = nullptr;
    size_t len = 0;
    CHECK(tessera_stop_matcher_push(nullptr, "x", -1, &out, &len) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_stop_matcher_flush(nullptr, &out, &len) == TESSERA_ERR_INVALID_ARGUMENT);

    REQUIRE(tessera_stop_matcher_create(stops, 2, &sm) == TESSERA_OK);
    REQUIRE(tessera_stop_matcher_push(sm, "Hello <|im", -1, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "Hello ");  // "<|im" could begin the stop string
    REQUIRE(tessera_stop_matcher_push(sm, "_end|> more", -1, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "");
    CHECK(tessera_stop_matcher_stopped(sm) == 1);
    REQUIRE(tessera_stop_matcher_push(sm, "after", -1, &out, &len) == TESSERA_OK);
    CHECK(len == 0);
    REQUIRE(tessera_stop_matcher_flush(sm, &out, &len) == TESSERA_OK);
    CHECK(len == 0);
    tessera_stop_matcher_free(sm);

    // No stop: the held-back tail comes out at the flush; an explicit length stops at it.
    REQUIRE(tessera_stop_matcher_create(stops, 2, &sm) == TESSERA_OK);
    REQUIRE(tessera_stop_matcher_push(sm, "abc STxyz", 6, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "abc ");
    REQUIRE(tessera_stop_matcher_flush(sm, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "ST");
    CHECK(tessera_stop_matcher_stopped(sm) == 0);
    tessera_stop_matcher_free(sm);

    // The chat format's own stop string.
    REQUIRE(tessera_stop_matcher_create_chat(nullptr, "chatml", &sm) == TESSERA_OK);
    REQUIRE(tessera_stop_matcher_push(sm, "ok<|im_end|>", -1, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "ok");
    CHECK(tessera_stop_matcher_stopped(sm) == 1);
    tessera_stop_matcher_free(sm);
}

TEST_CASE("capi: streaming detokenizer joins a character split across byte tokens") {
    tessera_detok_stream* ds = reinterpret_cast<tessera_detok_stream*>(1);
    CHECK(tessera_detok_stream_create(nullptr, &ds) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(ds == nullptr);
    const char* out = nullptr;
    size_t len = 0;
    CHECK(tessera_detok_stream_push(nullptr, 0, &out, &len) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_detok_stream_flush(nullptr, &out, &len) == TESSERA_ERR_INVALID_ARGUMENT);
    if (!have_shared()) {
        MESSAGE("skipped: /work/shared is missing");
        return;
    }
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_open(shared_file("models/stories260K.gguf").c_str(), nullptr, &m) == TESSERA_OK);
    // A SentencePiece vocabulary: <0x00>..<0xFF> are ids 3..258, after <unk>, <s>, </s>.
    char piece[16];
    size_t plen = 0;
    REQUIRE(tessera_token_to_piece(m, 3 + 0xC3, piece, sizeof piece, &plen) == TESSERA_OK);
    REQUIRE(plen == 1);
    REQUIRE(uint8_t(piece[0]) == 0xC3);
    REQUIRE(tessera_detok_stream_create(m, &ds) == TESSERA_OK);
    REQUIRE(tessera_detok_stream_push(ds, 403, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == " Once");
    REQUIRE(tessera_detok_stream_push(ds, 3 + 0xC3, &out, &len) == TESSERA_OK);
    CHECK(len == 0);  // the first byte of "é" waits for the second
    REQUIRE(tessera_detok_stream_push(ds, 3 + 0xA9, &out, &len) == TESSERA_OK);
    CHECK(std::string(out, len) == "\xC3\xA9");
    REQUIRE(tessera_detok_stream_push(ds, 3 + 0xE2, &out, &len) == TESSERA_OK);
    CHECK(len == 0);
    REQUIRE(tessera_detok_stream_flush(ds, &out, &len) == TESSERA_OK);
    CHECK(len == 0);  // an incomplete character stays held at the flush
    CHECK(tessera_detok_stream_push(ds, 100000, &out, &len) == TESSERA_ERR_INVALID_ARGUMENT);
    tessera_detok_stream_free(ds);
    tessera_model_free(m);
}

TEST_CASE("capi: a chat template given as text, and a broken model template falling back with a warning") {
    const tessera_chat_message msgs[] = {{"system", "S"}, {"user", "hi"}};
    std::vector<char> buf(256);
    size_t needed = 0;
    const char* tmpl = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                       "{% if add_generation_prompt %}[assistant:{% endif %}";
    const char* name = nullptr;
    REQUIRE(tessera_chat_template_resolve(nullptr, tmpl, &name) == TESSERA_OK);
    CHECK(std::string(name) == "jinja");
    REQUIRE(tessera_chat_format(nullptr, msgs, 2, 1, tmpl, buf.data(), buf.size(), &needed) == TESSERA_OK);
    CHECK(std::string(buf.data()) == "[system:S][user:hi][assistant:");
    // A broken template given by the caller is an error naming where it breaks.
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "{% if x %}never closed", buf.data(), buf.size(), &needed) ==
          TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("line 1") != std::string::npos);
    // A template whose own rules reject the conversation reports the template's message.
    CHECK(tessera_chat_format(nullptr, msgs, 2, 1, "{{ raise_exception('no system role here') }}", buf.data(),
                              buf.size(), &needed) == TESSERA_ERR_INVALID_ARGUMENT);

    if (!have_shared()) {
        MESSAGE("skipped the fallback part: /work/shared is missing");
        return;
    }
    // Phi-3's vocabulary with its template replaced by a broken one: the named format its text suggests
    // (phi3, from the markers still in it) is used, and tessera_last_error says why.
    auto src = tessera::GGUFFile::open(shared_file("vocab/ggml-vocab-phi-3.gguf"));
    tessera::GGUFWriter w;
    for (const auto& k : src->keys()) w.set(k, *src->find(k));
    w.set_str("tokenizer.chat_template", "{% for m in messages %}<|user|>{{ m.content }}<|end|><|assistant|>");
    const std::string path = "/tmp/tessera_test_capi_template_" + std::to_string(::getpid()) + ".gguf";
    w.write(path);
    tessera_model* m = nullptr;
    REQUIRE(tessera_vocab_open(path.c_str(), &m) == TESSERA_OK);
    REQUIRE(tessera_chat_template_resolve(m, nullptr, &name) == TESSERA_OK);
    CHECK(std::string(name) == "phi3");
    const std::string warning = tessera_last_error();
    CHECK(warning.rfind("warning: ", 0) == 0);
    CHECK(warning.find("tokenizer.chat_template") != std::string::npos);
    CHECK(warning.find("endfor") != std::string::npos);
    const tessera_chat_message user[] = {{"user", "hi"}};
    REQUIRE(tessera_chat_format(m, user, 1, 1, nullptr, buf.data(), buf.size(), &needed) == TESSERA_OK);
    CHECK(std::string(buf.data()) == "<|user|>\nhi<|end|>\n<|assistant|>\n");
    tessera_model_free(m);
    std::remove(path.c_str());
}

TEST_CASE("capi: several sequences: one batch, a logits row each, sampling a row, clear and copy") {
    const std::string path = tessera::testing::make_small_llama(
        "/tmp/tessera_test_capi_seq_" + std::to_string(::getpid()) + ".gguf", 64);
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_open(path.c_str(), nullptr, &m) == TESSERA_OK);
    std::remove(path.c_str());  // the mapping stays
    tessera_sampler_params gp = tessera_sampler_default_params();
    gp.temperature = 0.0f;
    const std::vector<std::vector<tessera_token>> prompts = {{1, 300, 301, 302}, {1, 500, 501}, {1, 700}};
    const int n_gen = 6;

    // Each prompt alone: its greedy continuation.
    std::vector<std::vector<tessera_token>> alone;
    for (const auto& p : prompts) {
        tessera_session_params sp = tessera_session_default_params();
        sp.n_ctx = 32;
        sp.n_threads = 2;
        sp.cache_type = TESSERA_CACHE_F32;
        tessera_session* s = nullptr;
        REQUIRE(tessera_session_create(m, &sp, &s) == TESSERA_OK);
        CHECK(tessera_session_n_seq(s) == 1);
        tessera_sampler* g = nullptr;
        REQUIRE(tessera_sampler_create(m, &gp, &g) == TESSERA_OK);
        REQUIRE(tessera_decode(s, p.data(), int32_t(p.size())) == TESSERA_OK);
        std::vector<tessera_token> out;
        for (int i = 0; i < n_gen; ++i) {
            tessera_token t = 0;
            REQUIRE(tessera_sample(g, s, &t) == TESSERA_OK);
            out.push_back(t);
            REQUIRE(tessera_decode(s, &t, 1) == TESSERA_OK);
        }
        alone.push_back(out);
        tessera_sampler_free(g);
        tessera_session_free(s);
    }

    // All three in one session, every step one batch: the prompts together, then one token of each.
    tessera_session_params sp = tessera_session_default_params();
    sp.n_ctx = 32;
    sp.n_threads = 2;
    sp.cache_type = TESSERA_CACHE_F32;
    sp.n_seq = 3;
    tessera_session* s = nullptr;
    REQUIRE(tessera_session_create(m, &sp, &s) == TESSERA_OK);
    CHECK(tessera_session_n_seq(s) == 3);
    CHECK(tessera_session_cache_bytes(s) == 3u * 32u * tessera_session_cache_bytes_per_token(s));
    std::vector<tessera_sampler*> samplers(3);
    for (auto& g : samplers) REQUIRE(tessera_sampler_create(m, &gp, &g) == TESSERA_OK);
    std::vector<tessera_token> tokens;
    std::vector<int32_t> seqs;
    for (int q = 0; q < 3; ++q)
        for (tessera_token t : prompts[size_t(q)]) tokens.push_back(t), seqs.push_back(q);
    REQUIRE(tessera_decode_batch(s, tokens.data(), seqs.data(), nullptr, int32_t(tokens.size())) == TESSERA_OK);
    std::vector<std::vector<tessera_token>> batched(3);
    for (int i = 0; i < n_gen; ++i) {
        REQUIRE(tessera_n_logit_rows(s) == 3);  // the last token of each sequence
        tokens.assign(3, 0);
        for (int32_t row = 0; row < 3; ++row) {
            const int32_t q = tessera_logits_seq(s, row);
            REQUIRE(q == row);  // in token order: sequence 0's token came first
            REQUIRE(tessera_sample_row(samplers[size_t(q)], s, row, &tokens[size_t(q)]) == TESSERA_OK);
            batched[size_t(q)].push_back(tokens[size_t(q)]);
        }
        seqs = {0, 1, 2};
        REQUIRE(tessera_decode_batch(s, tokens.data(), seqs.data(), nullptr, 3) == TESSERA_OK);
    }
    for (int q = 0; q < 3; ++q) CHECK(batched[size_t(q)] == alone[size_t(q)]);
    for (int q = 0; q < 3; ++q)
        CHECK(tessera_seq_n_past(s, q) == int32_t(prompts[size_t(q)].size()) + n_gen);

    // want_logits picks rows; copy forks a sequence, clear empties one, truncate cuts one.
    const tessera_token two[] = {5, 6};
    const int32_t on1[] = {1, 1};
    const int8_t first_only[] = {1, 0};
    REQUIRE(tessera_decode_batch(s, two, on1, first_only, 2) == TESSERA_OK);
    CHECK(tessera_n_logit_rows(s) == 1);
    CHECK(tessera_logits_seq(s, 0) == 1);
    REQUIRE(tessera_seq_copy(s, 1, 0) == TESSERA_OK);
    CHECK(tessera_seq_n_past(s, 0) == tessera_seq_n_past(s, 1));
    REQUIRE(tessera_seq_clear(s, 2) == TESSERA_OK);
    CHECK(tessera_seq_n_past(s, 2) == 0);
    REQUIRE(tessera_seq_truncate(s, 1, 3) == TESSERA_OK);
    CHECK(tessera_seq_n_past(s, 1) == 3);
    CHECK(tessera_session_n_past(s) == tessera_seq_n_past(s, 0));  // sequence 0

    // Bad input: status and message, nothing changed.
    const int32_t bad_seq = 3;
    CHECK(tessera_decode_batch(s, two, &bad_seq, nullptr, 1) != TESSERA_OK);
    CHECK(std::string(tessera_last_error()).find("sequence 3") != std::string::npos);
    CHECK(tessera_decode_batch(s, two, nullptr, nullptr, 1) == TESSERA_ERR_INVALID_ARGUMENT);
    CHECK(tessera_seq_copy(s, 0, 7) != TESSERA_OK);
    CHECK(tessera_seq_clear(s, -1) != TESSERA_OK);
    CHECK(tessera_seq_n_past(s, 9) == -1);
    CHECK(tessera_logits_seq(s, 99) == -1);
    tessera_token t = 0;
    CHECK(tessera_sample_row(samplers[0], s, 5, &t) != TESSERA_OK);
    CHECK(std::string(tessera_last_error()).find("row 5") != std::string::npos);
    // A full context in one sequence: TESSERA_ERR_CONTEXT_FULL, and no sequence moved.
    std::vector<tessera_token> many(30, 7);
    std::vector<int32_t> to0(30, 0);
    many.push_back(8);
    to0.push_back(2);
    const int32_t before0 = tessera_seq_n_past(s, 0), before2 = tessera_seq_n_past(s, 2);
    CHECK(tessera_decode_batch(s, many.data(), to0.data(), nullptr, int32_t(many.size())) == TESSERA_ERR_CONTEXT_FULL);
    CHECK(tessera_seq_n_past(s, 0) == before0);
    CHECK(tessera_seq_n_past(s, 2) == before2);
    // reset empties every sequence
    REQUIRE(tessera_session_reset(s) == TESSERA_OK);
    for (int q = 0; q < 3; ++q) CHECK(tessera_seq_n_past(s, q) == 0);
    sp.n_seq = -1;
    tessera_session* bad = nullptr;
    CHECK(tessera_session_create(m, &sp, &bad) == TESSERA_ERR_INVALID_ARGUMENT);

    for (auto* g : samplers) tessera_sampler_free(g);
    tessera_session_free(s);
    tessera_model_free(m);
}
