#include "tools/serve_openai.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>

namespace tessera::cli::serve {

namespace {

// Limits on what one request may ask for; a body is already at most the server's byte limit.
constexpr size_t kMaxStops = 16;
constexpr size_t kMaxStopBytes = 256;
constexpr size_t kMaxMessages = 4096;
constexpr int kMaxDepth = 32;  // JSON nesting; the formats need 4

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

// Nesting deeper than any valid request is refused before parsing, so no parser or destructor recursion
// can be driven deep by a client.
void check_depth(const std::string& body) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : body) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxDepth) throw bad("", "the request body nests deeper than " + std::to_string(kMaxDepth));
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

json parse_body(const std::string& body) {
    check_depth(body);
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw bad("", "the request body is not valid JSON");
    if (!j.is_object()) throw bad("", "the request body must be a JSON object");
    return j;
}

// A field's value, or nullptr when absent or null (OpenAI treats null as "not given").
const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& obj, const char* name, double def, double lo, double hi) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_number()) throw bad(name, std::string("'") + name + "' must be a number");
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi))
        throw bad(name, std::string("'") + name + "' is " + v->dump() + "; it must be in [" + json(lo).dump() + ", " +
                            json(hi).dump() + "]");
    return x;
}

int64_t integer(const json& obj, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_number_integer()) throw bad(name, std::string("'") + name + "' must be an integer");
    // Unsigned values beyond int64 are out of range whatever the bounds.
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
        throw bad(name, std::string("'") + name + "' is out of range");
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
        throw bad(name, std::string("'") + name + "' is " + std::to_string(x) + "; it must be in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
}

bool boolean(const json& obj, const char* name, bool def) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_boolean()) throw bad(name, std::string("'") + name + "' must be true or false");
    return v->get<bool>();
}

void check_model(const json& body, const ServedModel& served) {
    const json* v = field(body, "model");
    if (!v) throw bad("model", "'model' is required (this server has '" + served.id + "')");
    if (!v->is_string()) throw bad("model", "'model' must be a string");
    const std::string name = v->get<std::string>();
    if (name != served.id && name != served.id + ".gguf")
        throw ApiError(404, "The model '" + name + "' does not exist; this server has '" + served.id + "'", "model",
                       "model_not_found");
}

std::vector<std::string> stops(const json& body) {
    const json* v = field(body, "stop");
    std::vector<std::string> out;
    if (!v) return out;
    auto add = [&](const json& s) {
        if (!s.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
        std::string text = s.get<std::string>();
        if (text.size() > kMaxStopBytes)
            throw bad("stop", "a stop string is longer than " + std::to_string(kMaxStopBytes) + " bytes");
        if (!text.empty()) out.push_back(std::move(text));  // an empty stop string can never end anything
    };
    if (v->is_array()) {
        if (v->size() > kMaxStops) throw bad("stop", "at most " + std::to_string(kMaxStops) + " stop strings");
        for (const auto& s : *v) add(s);
    } else {
        add(*v);
    }
    return out;
}

// The fields chat and completion requests share: sampling, length, stops, streaming.
ParsedRequest common_fields(const json& body, const ServedModel& served) {
    ParsedRequest r;
    check_model(body, served);
    if (integer(body, "n", 1, 1, 1) != 1) throw bad("n", "only n = 1 is supported");
    r.stream = boolean(body, "stream", false);
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
        r.include_usage = boolean(*so, "include_usage", false);
    }

    tessera_sampler_params& sp = r.gen.sampling;
    sp = tessera_sampler_default_params();
    // OpenAI's sampling: temperature and top_p only, so the library's other filters start off.
    sp.top_k = int32_t(integer(body, "top_k", 0, 0, 1 << 20));  // llama-server's extension
    sp.min_p = float(number(body, "min_p", 0.0, 0.0, 1.0));     // llama-server's extension
    sp.repeat_penalty = float(number(body, "repeat_penalty", 1.0, 0.0, 10.0));
    sp.temperature = float(number(body, "temperature", 1.0, 0.0, 2.0));
    sp.top_p = float(number(body, "top_p", 1.0, 0.0, 1.0));
    if (sp.top_p <= 0.0f) sp.top_p = 1e-6f;  // top_p 0 keeps the most likely token only
    sp.presence_penalty = float(number(body, "presence_penalty", 0.0, -2.0, 2.0));
    sp.frequency_penalty = float(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
    if (field(body, "seed")) {
        sp.seed = uint64_t(integer(body, "seed", 0, INT64_MIN, INT64_MAX));
    } else {
        std::random_device rd;
        sp.seed = (uint64_t(rd()) << 32) ^ rd();
    }

    const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    r.gen.max_tokens = int32_t(integer(body, max_name, served.n_ctx, 1, INT32_MAX));
    r.gen.stops = stops(body);
    r.gen.ignore_eos = boolean(body, "ignore_eos", false);
    return r;
}

std::vector<tessera_token> tokenize(const ServedModel& served, const std::string& text, bool parse_special) {
    std::vector<tessera_token> ids(text.size() + 16);
    int32_t n = 0;
    if (text.size() > size_t(INT32_MAX / 2)) throw bad("", "the prompt is too long");
    tessera_status st = tessera_tokenize(served.model, text.data(), int32_t(text.size()), 1, parse_special,
                                         ids.data(), int32_t(ids.size()), &n);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        ids.resize(size_t(n));
        st = tessera_tokenize(served.model, text.data(), int32_t(text.size()), 1, parse_special, ids.data(), n, &n);
    }
    if (st != TESSERA_OK) throw ApiError(500, std::string("tokenizing the prompt: ") + tessera_last_error());
    ids.resize(size_t(n));
    return ids;
}

// The prompt must leave room for at least one generated token; max_tokens is clipped to what is left.
void fit_context(ParsedRequest& r, const ServedModel& served, const char* param) {
    const int64_t n = int64_t(r.gen.prompt.size());
    if (n == 0) throw bad(param, "the prompt gives no tokens");
    if (n >= served.n_ctx)
        throw ApiError(400,
                       "This model's maximum context length is " + std::to_string(served.n_ctx) +
                           " tokens. However, your prompt is " + std::to_string(n) +
                           " tokens, which leaves no room for the completion.",
                       param, "context_length_exceeded");
    r.gen.max_tokens = int32_t(std::min<int64_t>(r.gen.max_tokens, served.n_ctx - n));
}

std::string message_content(const json& msg, size_t i) {
    const std::string where = "messages[" + std::to_string(i) + "].content";
    const json* c = field(msg, "content");
    if (!c) return "";  // an assistant turn that only called tools
    std::string text;
    if (c->is_string()) {
        text = c->get<std::string>();
    } else if (c->is_array()) {  // content parts: only text ones
        for (const auto& part : *c) {
            if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
                !part["text"].is_string())
                throw bad(where, where + ": only parts of type 'text' with a string 'text' are supported");
            text += part["text"].get<std::string>();
        }
    } else {
        throw bad(where, where + " must be a string or an array of content parts");
    }
    // The C API takes NUL-terminated text; a NUL would silently cut the message.
    if (text.find('\0') != std::string::npos) throw bad(where, where + " contains a NUL character");
    return text;
}

std::string chat_prompt(const json& body, const ServedModel& served) {
    const json* msgs = field(body, "messages");
    if (!msgs) throw bad("messages", "'messages' is required");
    if (!msgs->is_array() || msgs->empty()) throw bad("messages", "'messages' must be a non-empty array");
    if (msgs->size() > kMaxMessages) throw bad("messages", "too many messages");
    std::vector<std::string> roles, contents;
    for (size_t i = 0; i < msgs->size(); ++i) {
        const json& m = (*msgs)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) throw bad(where, where + " must be an object");
        const json* role = field(m, "role");
        if (!role || !role->is_string()) throw bad(where + ".role", where + ".role must be a string");
        std::string r = role->get<std::string>();
        if (r == "developer") r = "system";  // OpenAI's newer name for the system turn
        if (r != "system" && r != "user" && r != "assistant")
            throw bad(where + ".role", where + ".role '" + r + "' is not one of system, developer, user, assistant");
        roles.push_back(r);
        contents.push_back(message_content(m, i));
    }
    if (served.chat_format.empty())
        throw bad("messages",
                  "this model has no chat template; start the server with --template NAME (" +
                      std::string(tessera_chat_template_names()) + ") or use /v1/completions");
    std::vector<tessera_chat_message> cm;
    for (size_t i = 0; i < roles.size(); ++i) cm.push_back({roles[i].c_str(), contents[i].c_str()});
    std::string text(4096, '\0');
    size_t needed = 0;
    const char* fmt = served.chat_format.c_str();
    tessera_status st = tessera_chat_format(served.model, cm.data(), cm.size(), 1, fmt, text.data(), text.size(), &needed);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        text.resize(needed + 1);
        st = tessera_chat_format(served.model, cm.data(), cm.size(), 1, fmt, text.data(), text.size(), &needed);
    }
    if (st == TESSERA_ERR_INVALID_ARGUMENT) throw bad("messages", tessera_last_error());
    if (st != TESSERA_OK) throw ApiError(500, std::string("formatting the chat: ") + tessera_last_error());
    text.resize(needed);
    return text;
}

std::string random_id(const char* prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* hex = "0123456789abcdef";
    std::string id = prefix;
    for (int i = 0; i < 24; ++i) id += hex[rng() & 15];
    return id;
}

json usage(int32_t prompt_tokens, int32_t completion_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
}

json reason(Finish f) {
    const char* r = finish_reason(f);
    return r ? json(r) : json(nullptr);
}

json header_fields(const ResponseHeader& h, bool chunk) {
    const char* object = h.kind == Kind::Chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}, {"system_fingerprint", nullptr}};
}

}  // namespace

json error_body(int status, const std::string& message, const std::string& param, const std::string& code) {
    const char* type = status == 401   ? "authentication_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

ParsedRequest parse_chat_request(const std::string& body_text, const ServedModel& served) {
    const json body = parse_body(body_text);
    ParsedRequest r = common_fields(body, served);
    r.gen.chat = true;
    r.gen.prompt = tokenize(served, chat_prompt(body, served), /*parse_special=*/true);
    fit_context(r, served, "messages");
    return r;
}

ParsedRequest parse_completion_request(const std::string& body_text, const ServedModel& served) {
    const json body = parse_body(body_text);
    ParsedRequest r = common_fields(body, served);
    const json* p = field(body, "prompt");
    if (!p) throw bad("prompt", "'prompt' is required");
    std::string text;
    if (p->is_string()) text = p->get<std::string>();
    else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) text = (*p)[0].get<std::string>();
    else throw bad("prompt", "'prompt' must be a string (or an array of one string)");
    if (field(body, "suffix")) throw bad("suffix", "'suffix' is not supported");
    if (boolean(body, "echo", false)) throw bad("echo", "'echo' is not supported");
    // As `tessera run` does: BOS as the model asks, special-token texts taken as plain text.
    r.gen.prompt = tokenize(served, text, /*parse_special=*/false);
    fit_context(r, served, "prompt");
    return r;
}

ResponseHeader new_response(Kind kind, const std::string& model) {
    return {kind, random_id(kind == Kind::Chat ? "chatcmpl-" : "cmpl-"), int64_t(std::time(nullptr)), model};
}

json whole_response(const ResponseHeader& h, const std::string& text, Finish finish, int32_t prompt_tokens,
                    int32_t completion_tokens) {
    json r = header_fields(h, false);
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason(finish)}};
    if (h.kind == Kind::Chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
    else choice["text"] = text;
    r["choices"] = json::array({choice});
    r["usage"] = usage(prompt_tokens, completion_tokens);
    return r;
}

json stream_chunk(const ResponseHeader& h, const std::string& text, bool first, Finish finish) {
    json r = header_fields(h, true);
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason(finish)}};
    if (h.kind == Kind::Chat) {
        json delta = json::object();
        if (first) delta["role"] = "assistant";
        if (!text.empty() || (first && finish == Finish::None)) delta["content"] = text;
        choice["delta"] = delta;
    } else {
        choice["text"] = text;
    }
    r["choices"] = json::array({choice});
    return r;
}

json usage_chunk(const ResponseHeader& h, int32_t prompt_tokens, int32_t completion_tokens) {
    json r = header_fields(h, true);
    r["choices"] = json::array();
    r["usage"] = usage(prompt_tokens, completion_tokens);
    return r;
}

std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace tessera::cli::serve
