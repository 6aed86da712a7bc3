// OpenAI's wire format for the server: request bodies checked field by field into a GenRequest (errors name
// the field), and the response objects, whole and as stream chunks, as OpenAI's API returns them.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "tessera.h"
#include "tools/serve_job.h"

namespace tessera::cli::serve {

using json = nlohmann::json;

// An error the client caused or must hear about, in OpenAI's shape:
// {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
    ApiError(int status, std::string message, std::string param = "", std::string code = "")
        : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)) {}
    int status;
    std::string param, code;
};
// The body for an error; type follows the status (invalid_request_error, authentication_error, server_error).
json error_body(int status, const std::string& message, const std::string& param = "", const std::string& code = "");

// The model being served, as requests see it.
struct ServedModel {
    tessera_model* model = nullptr;
    std::string id;           // what /v1/models lists and requests name
    std::string chat_format;  // resolved once at start ("" when the model has none)
    int32_t n_ctx = 0;        // tokens one slot holds
};

struct ParsedRequest {
    GenRequest gen;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with the token counts
};

// Both throw ApiError (400 for malformed JSON, wrong types and values, a prompt over the context; 404 for
// an unknown model).
ParsedRequest parse_chat_request(const std::string& body, const ServedModel& served);
ParsedRequest parse_completion_request(const std::string& body, const ServedModel& served);

// Response objects. `kind` is Chat or Completion; `id` and `created` are the same for every chunk of one answer.
enum class Kind { Chat, Completion };
struct ResponseHeader {
    Kind kind;
    std::string id;
    int64_t created;
    std::string model;
};
ResponseHeader new_response(Kind kind, const std::string& model);
json whole_response(const ResponseHeader& h, const std::string& text, Finish finish, int32_t prompt_tokens,
                    int32_t completion_tokens);
// A stream chunk with new text; `first` adds the assistant role (chat). finish != None gives the last chunk.
json stream_chunk(const ResponseHeader& h, const std::string& text, bool first, Finish finish);
json usage_chunk(const ResponseHeader& h, int32_t prompt_tokens, int32_t completion_tokens);

// JSON text safe to send: invalid UTF-8 (never expected) is replaced rather than thrown on.
std::string to_text(const json& j);

}  // namespace tessera::cli::serve
