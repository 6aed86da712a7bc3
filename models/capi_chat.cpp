// The C API's chat helpers: chat formats, stop-string matching and streaming detokenization, so that a
// chat front end (tessera chat) needs only tessera.h. Thin wrappers over models/chat_template.h,
// StopMatcher and utf8_take_complete; the model is reached through the public C functions only.
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/capi_guard.h"
#include "models/chat_template.h"
#include "models/sampler.h"
#include "models/tokenizer.h"
#include "models/unicode.h"
#include "tessera.h"

struct tessera_stop_matcher {
    explicit tessera_stop_matcher(std::vector<std::string> stops) : impl(std::move(stops)) {}
    tessera::StopMatcher impl;
    std::string out;  // what the last push/flush returned
};

struct tessera_detok_stream {
    const tessera_model* model;
    std::string tail;  // a trailing partial UTF-8 character
    std::string out;
    std::string piece;
};

namespace {

using tessera::capi::fail;
using tessera::capi::guarded;

// True when `text` is a single token of the model's vocabulary (a special-token marker it knows).
bool is_single_token(const tessera_model* m, const char* text) {
    tessera_token ids[4];
    int32_t n = 0;
    const tessera_status st = tessera_tokenize(m, text, -1, 0, 1, ids, 4, &n);
    return (st == TESSERA_OK || st == TESSERA_ERR_BUFFER_TOO_SMALL) && n == 1;
}

// The format: the override, else tokenizer.chat_template, else marker tokens. Throws for none:
// an unknown override is an argument error; a model whose format cannot be told is UNSUPPORTED.
tessera::ChatFormat resolve(const tessera_model* m, const char* override_name) {
    using tessera::ChatFormat;
    if (override_name && *override_name) return tessera::chat_format_from_name(override_name);
    if (!m) throw tessera::Error("no model and no template name given");
    const int32_t len = tessera_model_meta_str(m, "tokenizer.chat_template", nullptr, 0);
    if (len > 0) {
        std::string tmpl(size_t(len) + 1, '\0');
        tessera_model_meta_str(m, "tokenizer.chat_template", tmpl.data(), tmpl.size());
        tmpl.resize(size_t(len));
        const ChatFormat f = tessera::detect_chat_format(tmpl);
        if (f != ChatFormat::Unknown) return f;
    }
    const std::pair<const char*, ChatFormat> markers[] = {
        {"<|im_start|>", ChatFormat::ChatML},   {"<|start_header_id|>", ChatFormat::Llama3},
        {"<start_of_turn>", ChatFormat::Gemma}, {"<|assistant|>", ChatFormat::Phi3},
    };
    for (auto [text, f] : markers)
        if (is_single_token(m, text)) return f;
    throw tessera::Error(std::string("cannot tell this model's chat format (no recognizable "
                                     "tokenizer.chat_template); choose one with --template NAME (") +
                         tessera_chat_template_names() + ")",
                         tessera::Status::Unsupported);
}

tessera_status give(std::string& storage, const char** out, size_t* out_len) {
    *out = storage.c_str();
    *out_len = storage.size();
    return TESSERA_OK;
}

}  // namespace

extern "C" {

const char* tessera_chat_template_names(void) {
    static const std::string names = [] {
        std::string s;
        for (const auto& n : tessera::chat_format_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
    }();
    return names.c_str();
}

tessera_status tessera_chat_template_resolve(const tessera_model* m, const char* template_override,
                                             const char** name_out) {
    if (!name_out) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_template_resolve: name_out is null");
    *name_out = nullptr;
    if (!m && !(template_override && *template_override))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_template_resolve: model is null and no template name");
    return guarded([&] {
        *name_out = tessera::chat_format_name(resolve(m, template_override));
        return TESSERA_OK;
    });
}

tessera_status tessera_chat_format(const tessera_model* m, const tessera_chat_message* msgs, size_t n_msgs,
                                   int add_generation_prompt, const char* template_override, char* buf,
                                   size_t buf_size, size_t* needed) {
    if (!needed) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_format: needed is null");
    *needed = 0;
    if (!msgs && n_msgs > 0) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_format: msgs is null");
    if (!buf && buf_size > 0) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_format: buf is null");
    const char* name = nullptr;
    if (tessera_status st = tessera_chat_template_resolve(m, template_override, &name); st != TESSERA_OK) return st;
    return guarded([&] {
        std::vector<tessera::ChatMessage> messages;
        messages.reserve(n_msgs);
        for (size_t i = 0; i < n_msgs; ++i) {
            if (!msgs[i].role || !msgs[i].content)
                return fail(TESSERA_ERR_INVALID_ARGUMENT,
                            tessera::format("tessera_chat_format: message %zu has a null role or content", i));
            messages.push_back({msgs[i].role, msgs[i].content});
        }
        const std::string text =
            tessera::format_chat(tessera::chat_format_from_name(name), messages, add_generation_prompt != 0);
        *needed = text.size();
        if (!buf || buf_size < text.size() + 1) {
            if (buf && buf_size) buf[0] = '\0';
            return fail(TESSERA_ERR_BUFFER_TOO_SMALL,
                        tessera::format("tessera_chat_format: buffer of %zu bytes is too small for %zu", buf_size,
                                        text.size() + 1));
        }
        text.copy(buf, text.size());
        buf[text.size()] = '\0';
        return TESSERA_OK;
    });
}

// ---- stop strings ----

tessera_status tessera_stop_matcher_create(const char* const* stops, int32_t n_stops, tessera_stop_matcher** out) {
    if (!out) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_create: out is null");
    *out = nullptr;
    if (n_stops < 0 || (!stops && n_stops > 0))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_create: bad stops array");
    return guarded([&] {
        std::vector<std::string> v;
        for (int32_t i = 0; i < n_stops; ++i) {
            if (!stops[i] || !*stops[i])
                return fail(TESSERA_ERR_INVALID_ARGUMENT,
                            tessera::format("tessera_stop_matcher_create: stop string %d is null or empty", i));
            v.emplace_back(stops[i]);
        }
        *out = new tessera_stop_matcher(std::move(v));
        return TESSERA_OK;
    });
}

tessera_status tessera_stop_matcher_create_chat(const tessera_model* m, const char* template_override,
                                                tessera_stop_matcher** out) {
    if (!out) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_create_chat: out is null");
    *out = nullptr;
    const char* name = nullptr;
    if (tessera_status st = tessera_chat_template_resolve(m, template_override, &name); st != TESSERA_OK) return st;
    return guarded([&] {
        *out = new tessera_stop_matcher(tessera::chat_format_stops(tessera::chat_format_from_name(name)));
        return TESSERA_OK;
    });
}

void tessera_stop_matcher_free(tessera_stop_matcher* matcher) { delete matcher; }

tessera_status tessera_stop_matcher_push(tessera_stop_matcher* sm, const char* text, int64_t len, const char** out,
                                         size_t* out_len) {
    if (!sm || !out || !out_len || (!text && len != 0))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_push: matcher, text, out and out_len must "
                                                  "not be null");
    return guarded([&] {
        const std::string_view t = !text ? std::string_view() : len < 0 ? std::string_view(text)
                                                                        : std::string_view(text, size_t(len));
        sm->out = sm->impl.push(t);
        return give(sm->out, out, out_len);
    });
}

tessera_status tessera_stop_matcher_flush(tessera_stop_matcher* sm, const char** out, size_t* out_len) {
    if (!sm || !out || !out_len)
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_flush: matcher, out and out_len must not be "
                                                  "null");
    return guarded([&] {
        sm->out = sm->impl.stopped() ? std::string() : sm->impl.flush();
        return give(sm->out, out, out_len);
    });
}

int tessera_stop_matcher_stopped(const tessera_stop_matcher* sm) { return sm && sm->impl.stopped() ? 1 : 0; }

// ---- streaming detokenizer ----

tessera_status tessera_detok_stream_create(const tessera_model* m, tessera_detok_stream** out) {
    if (!out) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_detok_stream_create: out is null");
    *out = nullptr;
    if (!m) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_detok_stream_create: model is null");
    return guarded([&] {
        *out = new tessera_detok_stream{m, {}, {}, {}};
        return TESSERA_OK;
    });
}

void tessera_detok_stream_free(tessera_detok_stream* stream) { delete stream; }

tessera_status tessera_detok_stream_push(tessera_detok_stream* ds, tessera_token token, const char** out,
                                         size_t* out_len) {
    if (!ds || !out || !out_len)
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_detok_stream_push: stream, out and out_len must not be "
                                                  "null");
    return guarded([&] {
        ds->piece.resize(64);
        size_t len = 0;
        tessera_status st = tessera_token_to_piece(ds->model, token, ds->piece.data(), ds->piece.size(), &len);
        if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
            ds->piece.resize(len + 1);
            st = tessera_token_to_piece(ds->model, token, ds->piece.data(), ds->piece.size(), &len);
        }
        if (st != TESSERA_OK) return st;  // the message is already set
        ds->piece.resize(len);
        ds->out = tessera::utf8_take_complete(ds->tail + ds->piece, &ds->tail);
        return give(ds->out, out, out_len);
    });
}

tessera_status tessera_detok_stream_flush(tessera_detok_stream* ds, const char** out, size_t* out_len) {
    if (!ds || !out || !out_len)
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_detok_stream_flush: stream, out and out_len must not be "
                                                  "null");
    return guarded([&] {
        ds->out = tessera::utf8_take_complete(std::string(ds->tail), &ds->tail);
        return give(ds->out, out, out_len);
    });
}

size_t tessera_utf8_char_len(const char* text, size_t len) {
    if (!text) return 0;
    return tessera::unicode::valid_utf8_at(std::string_view(text, len), 0);
}

}  // extern "C"
