// The C API: thin wrappers over Model / Session / Tokenizer / sampling that turn
// every exception into a status code and a per-thread message (models/capi_guard.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <new>
#include <string>

#include "core/backend.h"
#include "core/error.h"
#include "models/cache_report.h"
#include "models/capi_guard.h"
#include "models/sampler.h"
#include "models/session.h"
#include "models/tokenizer.h"
#include "tessera.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "dev"
#endif

struct tessera_model {
    std::unique_ptr<tessera::Model> model;
    std::unique_ptr<tessera::Tokenizer> tokenizer;  // null when the file's vocabulary could not be read
    std::string tokenizer_error;
    // Vocab-only models (tessera_vocab_open): no weights (model is null), just the file's metadata.
    std::unique_ptr<tessera::GGUFFile> vocab_file;
    std::string vocab_arch;
    const tessera::GGUFFile& file() const { return model ? model->file() : *vocab_file; }
};

struct tessera_session {
    tessera_model* model;
    std::unique_ptr<tessera::Session> session;
    std::string cache_summary;  // tessera_session_cache_summary's text
};

struct tessera_sampler {
    std::unique_ptr<tessera::Sampler> impl;
};

namespace {

thread_local std::string g_last_error;

using tessera::capi::fail;
using tessera::capi::guarded;

#define REQUIRE_ARG(cond, msg) \
    do {                       \
        if (!(cond)) return fail(TESSERA_ERR_INVALID_ARGUMENT, msg); \
    } while (0)

tessera_status copy_out(const std::string& s, char* buf, size_t buf_size, size_t* len_out) {
    if (len_out) *len_out = s.size();
    if (!buf || buf_size < s.size() + 1) {
        if (buf && buf_size) buf[0] = '\0';
        return fail(TESSERA_ERR_BUFFER_TOO_SMALL,
                    tessera::format("buffer of %zu bytes is too small for %zu", buf_size, s.size() + 1));
    }
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    return TESSERA_OK;
}

const tessera::Tokenizer* tokenizer_of(const tessera_model* m) {
    if (!m->tokenizer) throw tessera::Error("this model has no usable vocabulary: " + m->tokenizer_error);
    return m->tokenizer.get();
}

}  // namespace

namespace tessera::capi {
tessera_status fail(tessera_status s, const std::string& msg) {
    g_last_error = msg;
    return s;
}
}  // namespace tessera::capi

extern "C" {

const char* tessera_last_error(void) { return g_last_error.c_str(); }

const char* tessera_status_name(tessera_status s) {
    switch (s) {
        case TESSERA_OK: return "ok";
        case TESSERA_ERR_INVALID_ARGUMENT: return "invalid argument";
        case TESSERA_ERR_FILE: return "bad file";
        case TESSERA_ERR_UNSUPPORTED: return "unsupported";
        case TESSERA_ERR_CONTEXT_FULL: return "context full";
        case TESSERA_ERR_BUFFER_TOO_SMALL: return "buffer too small";
        case TESSERA_ERR_OUT_OF_MEMORY: return "out of memory";
        case TESSERA_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char* tessera_version(void) { return TESSERA_VERSION; }

const char* tessera_cpu_level(void) {
    thread_local std::string level;
    const tessera_status s = guarded([&] {
        level = tessera::create_backend("cpu")->kernel_level();
        return TESSERA_OK;
    });
    return s == TESSERA_OK ? level.c_str() : nullptr;
}

// ---- models ----

tessera_model_params tessera_model_default_params(void) {
    tessera_model_params p;
    p.backend = nullptr;
    p.progress = nullptr;
    p.progress_user = nullptr;
    p.gpu_layers = 0;  // all
    return p;
}

tessera_status tessera_model_open(const char* path, const tessera_model_params* params, tessera_model** out) {
    REQUIRE_ARG(out, "tessera_model_open: out is null");
    *out = nullptr;
    REQUIRE_ARG(path, "tessera_model_open: path is null");
    return guarded([&] {
        tessera::ModelOptions mo;
        if (params && params->backend) mo.backend = params->backend;
        if (params && params->gpu_layers > 0) mo.gpu_layers = params->gpu_layers;  // else all (-1)
        if (params && params->progress) {
            const auto callback = params->progress;
            void* user = params->progress_user;
            mo.progress = [callback, user](size_t done, size_t total) { callback(done, total, user); };
        }
        auto m = std::make_unique<tessera_model>();
        m->model = tessera::Model::open(path, mo);  // errors carry FILE, UNSUPPORTED, OUT_OF_MEMORY, ...
        try {
            m->tokenizer = tessera::Tokenizer::from_gguf(m->model->file());
        } catch (const tessera::Error& e) {
            m->tokenizer_error = e.what();  // ids still work; text calls report this
        }
        *out = m.release();
        return TESSERA_OK;
    });
}

tessera_status tessera_vocab_open(const char* path, tessera_model** out) {
    REQUIRE_ARG(out, "tessera_vocab_open: out is null");
    *out = nullptr;
    REQUIRE_ARG(path, "tessera_vocab_open: path is null");
    return guarded([&] {
        auto m = std::make_unique<tessera_model>();
        try {
            m->vocab_file = tessera::GGUFFile::open(path);
        } catch (const tessera::Error& e) {
            return fail(TESSERA_ERR_FILE, e.what());
        }
        if (const tessera::GGUFValue* v = m->vocab_file->find("general.architecture");
            v && v->type == tessera::GGUFType::STRING)
            m->vocab_arch = v->s;
        // Unlike tessera_model_open, the vocabulary is all such a model has: a bad one is a bad file.
        try {
            m->tokenizer = tessera::Tokenizer::from_gguf(*m->vocab_file);
        } catch (const tessera::Error& e) {
            return fail(TESSERA_ERR_FILE, e.what());
        }
        *out = m.release();
        return TESSERA_OK;
    });
}

int tessera_model_is_vocab_only(const tessera_model* m) { return m && !m->model ? 1 : 0; }

void tessera_model_free(tessera_model* model) { delete model; }

// A vocab-only model has no hyperparameters beyond its vocabulary: those report 0.
const char* tessera_model_arch(const tessera_model* m) {
    if (!m) return "";
    return m->model ? m->model->hparams().arch.c_str() : m->vocab_arch.c_str();
}
int32_t tessera_model_n_vocab(const tessera_model* m) {
    if (!m) return 0;
    return m->model ? int32_t(m->model->hparams().n_vocab) : m->tokenizer->n_vocab();
}
int32_t tessera_model_n_ctx_train(const tessera_model* m) {
    return m && m->model ? int32_t(m->model->hparams().n_ctx_train) : 0;
}
int32_t tessera_model_n_embd(const tessera_model* m) { return m && m->model ? int32_t(m->model->hparams().n_embd) : 0; }
int32_t tessera_model_n_layer(const tessera_model* m) {
    return m && m->model ? int32_t(m->model->hparams().n_layer) : 0;
}
uint64_t tessera_model_size(const tessera_model* m) { return m && m->model ? m->model->weight_bytes() : 0; }
uint64_t tessera_model_repacked_bytes(const tessera_model* m) {
    return m && m->model ? m->model->repacked_weight_bytes() : 0;
}
uint64_t tessera_model_decode_bytes(const tessera_model* m) {
    return m && m->model ? m->model->decode_weight_bytes() : 0;
}

tessera_token tessera_model_bos(const tessera_model* m) {
    if (!m) return -1;
    return m->tokenizer ? m->tokenizer->bos() : m->model->hparams().bos;
}
tessera_token tessera_model_eos(const tessera_model* m) {
    if (!m) return -1;
    return m->tokenizer ? m->tokenizer->eos() : m->model->hparams().eos;
}
int tessera_model_is_eog(const tessera_model* m, tessera_token t) {
    if (!m) return 0;
    if (m->tokenizer) return m->tokenizer->is_eog(t) ? 1 : 0;
    return t == m->model->hparams().eos ? 1 : 0;
}

int32_t tessera_model_meta_str(const tessera_model* m, const char* key, char* buf, size_t buf_size) {
    if (!m || !key) return -1;
    try {
        const tessera::GGUFValue* v = m->file().find(key);
        if (!v) return -1;
        const std::string s = v->type == tessera::GGUFType::STRING ? v->s : tessera::GGUFFile::value_to_string(*v);
        if (buf && buf_size) {
            const size_t n = std::min(s.size(), buf_size - 1);
            std::memcpy(buf, s.data(), n);
            buf[n] = '\0';
        }
        return int32_t(s.size());
    } catch (const std::exception& e) {
        g_last_error = e.what();
        return -1;
    }
}

// ---- tokens ----

tessera_status tessera_tokenize(const tessera_model* m, const char* text, int32_t text_len, int add_special,
                                int parse_special, tessera_token* tokens, int32_t n_max, int32_t* n_out) {
    REQUIRE_ARG(m && text && n_out, "tessera_tokenize: model, text and n_out must not be null");
    REQUIRE_ARG(n_max >= 0 && (tokens || n_max == 0), "tessera_tokenize: bad output buffer");
    return guarded([&] {
        const size_t len = text_len < 0 ? std::strlen(text) : size_t(text_len);
        const auto ids = tokenizer_of(m)->tokenize(std::string_view(text, len), add_special != 0, parse_special != 0);
        *n_out = int32_t(ids.size());
        if (int64_t(ids.size()) > n_max)
            return fail(TESSERA_ERR_BUFFER_TOO_SMALL,
                        tessera::format("tokenize: %zu tokens do not fit in %d", ids.size(), n_max));
        std::copy(ids.begin(), ids.end(), tokens);
        return TESSERA_OK;
    });
}

tessera_status tessera_token_to_piece(const tessera_model* m, tessera_token token, char* buf, size_t buf_size,
                                      size_t* len_out) {
    REQUIRE_ARG(m, "tessera_token_to_piece: model is null");
    return guarded([&] {
        const auto* tok = tokenizer_of(m);
        tok->check_id(token);
        return copy_out(tok->token_to_piece(token), buf, buf_size, len_out);
    });
}

tessera_status tessera_token_to_piece_ext(const tessera_model* m, tessera_token token, int render_special, char* buf,
                                          size_t buf_size, size_t* len_out) {
    REQUIRE_ARG(m, "tessera_token_to_piece_ext: model is null");
    return guarded([&] {
        const auto* tok = tokenizer_of(m);
        tok->check_id(token);
        return copy_out(tok->token_to_piece(token, render_special != 0), buf, buf_size, len_out);
    });
}

tessera_status tessera_detokenize(const tessera_model* m, const tessera_token* tokens, int32_t n_tokens, char* buf,
                                  size_t buf_size, size_t* len_out) {
    REQUIRE_ARG(m && (tokens || n_tokens == 0) && n_tokens >= 0, "tessera_detokenize: bad arguments");
    return guarded([&] {
        const auto* tok = tokenizer_of(m);
        for (int32_t i = 0; i < n_tokens; ++i) tok->check_id(tokens[i]);
        return copy_out(tok->detokenize(std::span<const tessera::TokenId>(tokens, size_t(n_tokens))), buf, buf_size,
                        len_out);
    });
}

// ---- sessions ----

tessera_session_params tessera_session_default_params(void) {
    tessera_session_params p;
    p.n_ctx = 0;
    p.n_threads = 0;
    p.n_batch = 512;
    p.cache_type = TESSERA_CACHE_F16;
    p.backend = nullptr;
    p.logits_all = 0;
    p.capture_attention = 0;
    p.n_seq = 1;
    return p;
}

tessera_status tessera_session_create(tessera_model* m, const tessera_session_params* params, tessera_session** out) {
    REQUIRE_ARG(out, "tessera_session_create: out is null");
    *out = nullptr;
    REQUIRE_ARG(m, "tessera_session_create: model is null");
    REQUIRE_ARG(m->model, "tessera_session_create: this model was opened vocab-only (tessera_vocab_open) and has no "
                          "weights to run; open it with tessera_model_open");
    const tessera_session_params p = params ? *params : tessera_session_default_params();
    REQUIRE_ARG(p.n_ctx >= 0 && p.n_threads >= 0 && p.n_batch >= 0 && p.n_seq >= 0,
                "tessera_session_create: n_ctx, n_threads, n_batch and n_seq must be >= 0");
    return guarded([&] {
        tessera::SessionOptions so;
        so.n_ctx = p.n_ctx;
        so.n_threads = p.n_threads;
        so.n_batch = p.n_batch > 0 ? p.n_batch : 512;
        // A C caller may store any int in the enum field; read it as an integer, since loading an
        // out-of-range value through the C++ enum type is undefined behaviour.
        std::underlying_type_t<tessera_cache_type> cache_type;
        static_assert(sizeof cache_type == sizeof p.cache_type);
        std::memcpy(&cache_type, &p.cache_type, sizeof cache_type);
        switch (cache_type) {
            case TESSERA_CACHE_F16: so.cache_type = tessera::DType::F16; break;
            case TESSERA_CACHE_F32: so.cache_type = tessera::DType::F32; break;
            case TESSERA_CACHE_Q8_0: so.cache_type = tessera::DType::Q8_0; break;
            default: return fail(TESSERA_ERR_INVALID_ARGUMENT, tessera::format("unknown cache type %d", int(cache_type)));
        }
        if (p.backend) so.backend = p.backend;
        so.logits_all = p.logits_all != 0;
        so.capture_attention = p.capture_attention != 0;
        so.n_seq = p.n_seq > 0 ? p.n_seq : 1;
        auto s = std::make_unique<tessera_session>();
        s->model = m;
        s->session = std::make_unique<tessera::Session>(*m->model, so);
        *out = s.release();
        return TESSERA_OK;
    });
}

void tessera_session_free(tessera_session* s) { delete s; }

tessera_status tessera_decode(tessera_session* s, const tessera_token* tokens, int32_t n_tokens) {
    REQUIRE_ARG(s && tokens && n_tokens > 0, "tessera_decode: session and tokens must not be null, n_tokens > 0");
    return guarded([&] {
        s->session->decode(tokens, n_tokens);
        return TESSERA_OK;
    });
}

tessera_status tessera_decode_batch(tessera_session* s, const tessera_token* tokens, const int32_t* seq_ids,
                                    const int8_t* want_logits, int32_t n_tokens) {
    REQUIRE_ARG(s && tokens && seq_ids && n_tokens > 0,
                "tessera_decode_batch: session, tokens and seq_ids must not be null, n_tokens > 0");
    return guarded([&] {
        s->session->decode_batch(tokens, seq_ids, reinterpret_cast<const uint8_t*>(want_logits), n_tokens);
        return TESSERA_OK;
    });
}

int32_t tessera_logits_seq(const tessera_session* s, int32_t row) {
    if (!s || row < 0 || row >= s->session->n_logit_rows()) return -1;
    return s->session->logit_seq(row);
}

int32_t tessera_session_n_seq(const tessera_session* s) { return s ? s->session->n_seq() : 0; }

int32_t tessera_seq_n_past(const tessera_session* s, int32_t seq) {
    if (!s || seq < 0 || seq >= s->session->n_seq()) return -1;
    return int32_t(s->session->n_past(seq));
}

tessera_status tessera_seq_truncate(tessera_session* s, int32_t seq, int32_t n_keep) {
    REQUIRE_ARG(s, "tessera_seq_truncate: session is null");
    return guarded([&] {
        s->session->truncate(int(seq), int64_t(n_keep));
        return TESSERA_OK;
    });
}

tessera_status tessera_seq_clear(tessera_session* s, int32_t seq) {
    REQUIRE_ARG(s, "tessera_seq_clear: session is null");
    return guarded([&] {
        s->session->clear_seq(seq);
        return TESSERA_OK;
    });
}

tessera_status tessera_seq_copy(tessera_session* s, int32_t src, int32_t dst) {
    REQUIRE_ARG(s, "tessera_seq_copy: session is null");
    return guarded([&] {
        s->session->copy_seq(src, dst);
        return TESSERA_OK;
    });
}

const float* tessera_get_logits(tessera_session* s, int32_t row) {
    if (!s) {
        g_last_error = "tessera_get_logits: session is null";
        return nullptr;
    }
    const int64_t rows = s->session->n_logit_rows();
    if (row == -1) row = int32_t(rows - 1);
    if (row < 0 || row >= rows) {
        g_last_error = tessera::format("tessera_get_logits: row %d is not in [0, %lld)", row, (long long)rows);
        return nullptr;
    }
    return s->session->logits(row);
}

int32_t tessera_n_logit_rows(const tessera_session* s) { return s ? int32_t(s->session->n_logit_rows()) : 0; }
int32_t tessera_session_n_past(const tessera_session* s) { return s ? int32_t(s->session->n_past()) : 0; }
int32_t tessera_session_n_ctx(const tessera_session* s) { return s ? int32_t(s->session->n_ctx()) : 0; }

int32_t tessera_attention_n_layers(const tessera_session* s) {
    if (!s || s->session->attention_records().empty()) return 0;
    return int32_t(s->session->attention_records()[0].size());
}

tessera_status tessera_attention_layer_info(const tessera_session* s, int32_t layer, int32_t* n_head,
                                            int32_t* n_kv_head, int32_t* window) {
    REQUIRE_ARG(s, "tessera_attention_layer_info: session is null");
    REQUIRE_ARG(n_head && n_kv_head && window, "tessera_attention_layer_info: an output pointer is null");
    const int32_t n_layer = tessera_attention_n_layers(s);
    if (layer < 0 || layer >= n_layer)
        return fail(TESSERA_ERR_INVALID_ARGUMENT,
                    tessera::format("attention layer %d is not in [0, %d) (capture_attention set, and a decode run?)",
                                    layer, n_layer));
    const tessera::AttentionRecord& r = s->session->attention_records()[0][size_t(layer)];
    *n_head = int32_t(r.n_head);
    *n_kv_head = int32_t(r.n_kv_head);
    *window = r.spec.window;
    return TESSERA_OK;
}

tessera_status tessera_attention_map(const tessera_session* s, int32_t layer, int32_t head, float* out,
                                     size_t out_floats, int32_t* n_query, int32_t* n_key, int32_t* first_query) {
    REQUIRE_ARG(s, "tessera_attention_map: session is null");
    REQUIRE_ARG(n_query && n_key && first_query, "tessera_attention_map: an output pointer is null");
    return guarded([&] {
        const tessera::AttentionMap map = tessera::attention_map(s->session->attention_records(), layer, head);
        *n_query = int32_t(map.n_query);
        *n_key = int32_t(map.n_key);
        *first_query = int32_t(map.first_query);
        if (!out || out_floats < map.probs.size())
            return fail(TESSERA_ERR_BUFFER_TOO_SMALL,
                        tessera::format("attention map: %zu floats needed, %zu given", map.probs.size(), out_floats));
        std::copy(map.probs.begin(), map.probs.end(), out);
        return TESSERA_OK;
    });
}

tessera_status tessera_session_truncate(tessera_session* s, int32_t n_keep) {
    REQUIRE_ARG(s, "tessera_session_truncate: session is null");
    return guarded([&] {
        s->session->truncate(n_keep);
        return TESSERA_OK;
    });
}

tessera_status tessera_session_reset(tessera_session* s) {
    REQUIRE_ARG(s, "tessera_session_reset: session is null");
    return guarded([&] {
        s->session->clear_all();
        return TESSERA_OK;
    });
}

uint64_t tessera_session_cache_bytes_per_token(const tessera_session* s) {
    return s ? s->session->cache().bytes_per_token() : 0;
}
uint64_t tessera_session_cache_bytes(const tessera_session* s) { return s ? s->session->cache().total_bytes() : 0; }
const char* tessera_session_cache_summary(tessera_session* s) {
    if (!s) return "";
    s->cache_summary = tessera::describe_kv_cache(s->session->cache(), s->model->model->hparams());
    return s->cache_summary.c_str();
}

// ---- sampling ----

tessera_sampler_params tessera_sampler_default_params(void) {
    tessera_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.seed = 0;
    return p;
}

tessera_status tessera_sampler_create(const tessera_model* m, const tessera_sampler_params* params,
                                      tessera_sampler** out) {
    REQUIRE_ARG(out, "tessera_sampler_create: out is null");
    *out = nullptr;
    REQUIRE_ARG(m, "tessera_sampler_create: model is null");
    const tessera_sampler_params p = params ? *params : tessera_sampler_default_params();
    return guarded([&] {
        tessera::SamplerParams c;
        c.temperature = p.temperature;
        c.top_k = p.top_k;
        c.top_p = p.top_p;
        c.min_p = p.min_p;
        c.repeat_penalty = p.repeat_penalty;
        c.frequency_penalty = p.frequency_penalty;
        c.presence_penalty = p.presence_penalty;
        c.penalty_last_n = p.penalty_last_n;
        c.seed = p.seed;
        auto s = std::make_unique<tessera_sampler>();
        s->impl = std::make_unique<tessera::Sampler>(c, tessera_model_n_vocab(m));
        *out = s.release();
        return TESSERA_OK;
    });
}

void tessera_sampler_free(tessera_sampler* s) { delete s; }

tessera_status tessera_sample(tessera_sampler* smp, tessera_session* s, tessera_token* out) {
    REQUIRE_ARG(smp && s && out, "tessera_sample: sampler, session and out must not be null");
    return guarded([&] {
        TESSERA_CHECK(s->session->n_logit_rows() > 0, "tessera_sample: no logits yet (decode first)");
        const float* row = s->session->logits(s->session->n_logit_rows() - 1);
        *out = smp->impl->sample(row);
        return TESSERA_OK;
    });
}

tessera_status tessera_sample_row(tessera_sampler* smp, tessera_session* s, int32_t row, tessera_token* out) {
    REQUIRE_ARG(smp && s && out, "tessera_sample_row: sampler, session and out must not be null");
    return guarded([&] {
        const int64_t rows = s->session->n_logit_rows();
        TESSERA_CHECK(row >= 0 && row < rows, "tessera_sample_row: row %d is not in [0, %lld)", row, (long long)rows);
        *out = smp->impl->sample(s->session->logits(row));
        return TESSERA_OK;
    });
}

tessera_status tessera_sampler_accept(tessera_sampler* smp, tessera_token token) {
    REQUIRE_ARG(smp, "tessera_sampler_accept: sampler is null");
    return guarded([&] {
        smp->impl->accept(token);
        return TESSERA_OK;
    });
}

}  // extern "C"
