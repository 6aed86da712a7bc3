// The C API's chat helpers: chat prompts, stop-string matching and streaming detokenization, so that a
// chat front end (tessera chat, the server) needs only tessera.h. A prompt comes from the model's own
// template (tokenizer.chat_template, rendered by models/chat_jinja.h), or from template text or a named
// format (models/chat_template.h) given as the override; a model whose template cannot be used falls back
// to a named format, with a warning. StopMatcher and utf8_take_complete do the rest; the model is reached
// through the public C functions only.
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "models/capi_guard.h"
#include "models/chat_jinja.h"
#include "models/chat_channels.h"
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

struct tessera_channel_filter {
    tessera_channel_filter(bool harmony, bool show) : impl(harmony, show) {}
    tessera::ChannelFilter impl;
    std::string out;
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

// What a chat call uses: a Jinja template (the model's, or text given as the override) or a named format.
struct ChatChoice {
    std::unique_ptr<tessera::JinjaChatTemplate> jinja;
    tessera::ChatFormat format = tessera::ChatFormat::Unknown;
    std::string warning;  // why the model's own template is not used, when it is not
};

// The name under which the model's own template (or template text) is used.
const char* const kJinjaName = "jinja";

// An override is template text rather than a name when it has Jinja tags (llama.cpp takes either, too).
bool is_template_text(const char* s) { return std::strstr(s, "{{") || std::strstr(s, "{%"); }

// The text of a special token (BOS, EOS) for the template's bos_token / eos_token; "" when there is none.
std::string special_text(const tessera_model* m, tessera_token id) {
    if (!m || id < 0) return {};
    char buf[256];
    size_t len = 0;
    if (tessera_token_to_piece_ext(m, id, 1, buf, sizeof buf, &len) != TESSERA_OK) return {};
    return std::string(buf, len);
}

std::string model_template(const tessera_model* m) {
    const int32_t len = m ? tessera_model_meta_str(m, "tokenizer.chat_template", nullptr, 0) : 0;
    if (len <= 0) return {};
    std::string tmpl(size_t(len) + 1, '\0');
    tessera_model_meta_str(m, "tokenizer.chat_template", tmpl.data(), tmpl.size());
    tmpl.resize(size_t(len));
    return tmpl;
}

// A Jinja template ready for use: parsed, and shown to render a one-message conversation.
std::unique_ptr<tessera::JinjaChatTemplate> usable_template(const tessera_model* m, const std::string& source) {
    auto t = std::make_unique<tessera::JinjaChatTemplate>(source, special_text(m, m ? tessera_model_bos(m) : -1),
                                                          special_text(m, m ? tessera_model_eos(m) : -1));
    (void)t->apply({{"user", "Hello"}}, true);
    return t;
}

// The choice: the override (template text, "jinja" for the model's template, or a format name), else the
// model's tokenizer.chat_template, else the format its template text or marker tokens suggest. Throws for
// none: a bad override is an argument error; a model whose format cannot be told is UNSUPPORTED.
ChatChoice resolve(const tessera_model* m, const char* override_name) {
    using tessera::ChatFormat;
    ChatChoice c;
    if (override_name && *override_name) {
        if (is_template_text(override_name) || std::strcmp(override_name, kJinjaName) == 0) {
            const std::string source = is_template_text(override_name) ? std::string(override_name) : model_template(m);
            if (source.empty()) throw tessera::Error("chat template 'jinja': the model has no tokenizer.chat_template");
            c.jinja = usable_template(m, source);
            return c;
        }
        c.format = tessera::chat_format_from_name(override_name);
        return c;
    }
    if (!m) throw tessera::Error("no model and no template name given");
    const std::string tmpl = model_template(m);
    if (!tmpl.empty()) {
        try {
            c.jinja = usable_template(m, tmpl);
            return c;
        } catch (const tessera::Error& e) {
            c.warning = std::string("the model's tokenizer.chat_template cannot be used (") + e.what() + ")";
        }
        c.format = tessera::detect_chat_format(tmpl);
    }
    const std::pair<const char*, ChatFormat> markers[] = {
        {"<|im_start|>", ChatFormat::ChatML},   {"<|start_header_id|>", ChatFormat::Llama3},
        {"<start_of_turn>", ChatFormat::Gemma}, {"<|assistant|>", ChatFormat::Phi3},
    };
    for (auto [text, f] : markers)
        if (c.format == ChatFormat::Unknown && is_single_token(m, text)) c.format = f;
    if (c.format == ChatFormat::Unknown)
        throw tessera::Error((c.warning.empty() ? std::string("cannot tell this model's chat format (no "
                                                              "tokenizer.chat_template)")
                                                : c.warning + " and its chat format cannot be told otherwise") +
                                 "; choose one with --chat-template NAME (" + tessera_chat_template_names() + ")",
                             tessera::Status::Unsupported);
    if (!c.warning.empty()) c.warning += std::string("; using the named format ") + tessera::chat_format_name(c.format) + " instead";
    return c;
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
        std::string s = kJinjaName;
        for (const auto& n : tessera::chat_format_names()) s += ", " + n;
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
        const ChatChoice c = resolve(m, template_override);
        *name_out = c.jinja ? kJinjaName : tessera::chat_format_name(c.format);
        // A fallback succeeds, and leaves its reason where tessera_last_error reads it.
        if (!c.warning.empty()) fail(TESSERA_OK, "warning: " + c.warning);
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
    if (!m && !(template_override && *template_override))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_chat_format: model is null and no template name");
    return guarded([&] {
        const ChatChoice choice = resolve(m, template_override);
        std::vector<tessera::ChatMessage> messages;
        messages.reserve(n_msgs);
        for (size_t i = 0; i < n_msgs; ++i) {
            if (!msgs[i].role || !msgs[i].content)
                return fail(TESSERA_ERR_INVALID_ARGUMENT,
                            tessera::format("tessera_chat_format: message %zu has a null role or content", i));
            messages.push_back({msgs[i].role, msgs[i].content});
        }
        const std::string text = choice.jinja ? choice.jinja->apply(messages, add_generation_prompt != 0)
                                              : tessera::format_chat(choice.format, messages, add_generation_prompt != 0);
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
    if (!m && !(template_override && *template_override))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_stop_matcher_create_chat: model is null and no template name");
    return guarded([&] {
        const ChatChoice choice = resolve(m, template_override);
        *out = new tessera_stop_matcher(choice.jinja ? choice.jinja->stops() : tessera::chat_format_stops(choice.format));
        return TESSERA_OK;
    });
}

void tessera_stop_matcher_free(tessera_stop_matcher* matcher) { delete matcher; }

tessera_status tessera_channel_filter_create(const tessera_model* m, const char* template_override,
                                             int show_other_channels, tessera_channel_filter** out) {
    if (!out) return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_channel_filter_create: out is null");
    *out = nullptr;
    const char* name = nullptr;
    if (tessera_status st = tessera_chat_template_resolve(m, template_override, &name); st != TESSERA_OK) return st;
    return guarded([&] {
        // A Jinja template renders the prompt, but the answer's channels are still told from its text.
        const ChatChoice c = resolve(m, template_override);
        bool harmony = c.format == tessera::ChatFormat::Harmony;
        if (c.jinja) {
            const bool text = template_override && is_template_text(template_override);
            const std::string source = text ? std::string(template_override) : m ? model_template(m) : std::string();
            harmony = tessera::detect_chat_format(source) == tessera::ChatFormat::Harmony;
        }
        *out = new tessera_channel_filter(harmony, show_other_channels != 0);
        return TESSERA_OK;
    });
}

void tessera_channel_filter_free(tessera_channel_filter* filter) { delete filter; }

tessera_status tessera_channel_filter_push(tessera_channel_filter* f, const char* text, int64_t len,
                                           const char** out, size_t* out_len) {
    if (!f || !out || !out_len || (!text && len != 0))
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_channel_filter_push: filter, text, out and out_len must "
                                                  "not be null");
    return guarded([&] {
        const std::string_view t = !text ? std::string_view() : len < 0 ? std::string_view(text)
                                                                        : std::string_view(text, size_t(len));
        f->out = f->impl.push(t);
        return give(f->out, out, out_len);
    });
}

tessera_status tessera_channel_filter_flush(tessera_channel_filter* f, const char** out, size_t* out_len) {
    if (!f || !out || !out_len)
        return fail(TESSERA_ERR_INVALID_ARGUMENT, "tessera_channel_filter_flush: filter, out and out_len must not be null");
    return guarded([&] {
        f->out = f->impl.flush();
        return give(f->out, out, out_len);
    });
}

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
