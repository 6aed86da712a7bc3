#include "tools/serve_routes.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

namespace tessera::cli::serve {

namespace {

using httplib::DataSink;
using httplib::Request;
using httplib::Response;
using HandlerResponse = httplib::Server::HandlerResponse;

// How often a waiting answer checks that its client is still there.
constexpr auto kPoll = std::chrono::milliseconds(100);

void send_json(Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(to_text(body), "application/json");
}

void send_error(Response& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
    send_json(res, status, error_body(status, message, param, code));
}

// Comparison that takes as long for a near miss as for a far one, so the key cannot be found by timing.
bool same_secret(const std::string& given, const std::string& secret) {
    unsigned diff = unsigned(given.size() ^ secret.size());
    for (size_t i = 0; i < given.size(); ++i) diff |= unsigned(uint8_t(given[i]) ^ uint8_t(secret[i % secret.size()]));
    return diff == 0;
}

std::string sse(const json& j) { return "data: " + to_text(j) + "\n\n"; }

bool write(DataSink& sink, const std::string& s) { return sink.write(s.data(), s.size()); }

}  // namespace

Routes::Routes(Engine& engine, ServedModel served, RouteOptions options)
    : engine_(engine), served_(std::move(served)), options_(std::move(options)) {}

void Routes::count_response(int status) {
    std::lock_guard<std::mutex> lock(mu_);
    ++responses_[status];
}

std::string Routes::metrics_text() const {
    const EngineStats s = engine_.stats();
    std::ostringstream o;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
    };
    o << "# HELP tessera_http_responses_total HTTP responses sent, by status\n# TYPE tessera_http_responses_total counter\n";
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [status, n] : responses_) o << "tessera_http_responses_total{code=\"" << status << "\"} " << n << '\n';
    }
    metric("tessera_requests_finished_total", "counter", "generation requests that ran to the end", s.finished);
    metric("tessera_requests_cancelled_total", "counter", "generation requests whose client went away (or the server stopped)", s.cancelled);
    metric("tessera_requests_failed_total", "counter", "generation requests that failed inside the engine", s.failed);
    metric("tessera_prompt_tokens_total", "counter", "prompt tokens admitted", s.prompt_tokens);
    metric("tessera_generated_tokens_total", "counter", "tokens generated", s.generated_tokens);
    metric("tessera_queue_depth", "gauge", "requests waiting for a slot", s.queue_depth);
    metric("tessera_slots_busy", "gauge", "slots generating now", s.slots_busy);
    metric("tessera_slots_total", "gauge", "slots (--parallel)", s.slots_total);
    metric("tessera_batches_total", "counter", "forward passes (each takes tokens of every busy slot)", s.batches);
    metric("tessera_batches_mixed_total", "counter",
           "forward passes with a prompt chunk of one request beside decode tokens of others", s.mixed_batches);
    metric("tessera_batch_sequences_max", "gauge", "the most slots one forward pass has served", s.batch_sequences_max);
    metric("tessera_compute_seconds_total", "counter", "seconds the engine spent in forward passes", s.compute_seconds);
    metric("tessera_step_other_seconds_total", "counter",
           "seconds of the engine's steps outside the forward pass (admitting, sampling, detokenizing, streaming)",
           s.step_other_seconds);
    return o.str();
}

void Routes::install(httplib::Server& server) {
    // Before routing and before any body is read: the key, then the declared body size.
    server.set_pre_routing_handler([this](const Request& req, Response& res) {
        const bool protected_path = req.path.rfind("/v1/", 0) == 0 || req.path == "/metrics";
        const bool has_body = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
        if (protected_path && !options_.api_key.empty() &&
            !same_secret(req.get_header_value("Authorization"), "Bearer " + options_.api_key)) {
            send_error(res, 401, "Incorrect or missing API key (send 'Authorization: Bearer KEY')", "",
                       "invalid_api_key");
            if (has_body) res.set_header("Connection", "close");  // the body stays unread
            return HandlerResponse::Handled;
        }
        if (req.has_header("Content-Length")) {
            const std::string v = req.get_header_value("Content-Length");
            char* end = nullptr;
            const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n > options_.max_body) {
                send_error(res, 413,
                           "The request body (Content-Length " + v + ") is over this server's limit of " +
                               std::to_string(options_.max_body) + " bytes");
                res.set_header("Connection", "close");
                return HandlerResponse::Handled;
            }
        }
        return HandlerResponse::Unhandled;
    });

    // Errors httplib produces itself (no route, unreadable request) get OpenAI's shape too.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
        if (!res.body.empty()) return HandlerResponse::Unhandled;  // already an error of ours
        const int status = res.status;
        if (status == 404) send_error(res, 404, "Unknown endpoint: " + req.method + " " + req.path);
        else if (status == 413) send_error(res, 413, "The request body is too large");
        else if (status == 400) send_error(res, 400, "The request could not be read as HTTP");
        else send_error(res, status, "HTTP error " + std::to_string(status));
        return HandlerResponse::Handled;
    }));
    server.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        send_error(res, 500, what);
    });
    server.set_logger([this](const Request& req, const Response& res) {
        count_response(res.status);
        if (options_.verbose)
            std::fprintf(stderr, "%s %s %s -> %d\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                         res.status);
    });

    server.Get("/", [](const Request&, Response& res) {
        res.set_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
        res.set_content(kChatPage, "text/html; charset=utf-8");
    });
    server.Get("/health", [this](const Request&, Response& res) {
        if (stopping_.load()) send_json(res, 503, {{"status", "stopping"}});
        else send_json(res, 200, {{"status", "ok"}});
    });
    server.Get("/metrics", [this](const Request&, Response& res) {
        res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    server.Get("/v1/models", [this](const Request&, Response& res) {
        json model = {{"id", served_.id}, {"object", "model"}, {"created", 0}, {"owned_by", "tessera"},
                      {"meta", {{"n_ctx", served_.n_ctx}, {"arch", tessera_model_arch(served_.model)}}}};
        send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
    });
    auto generate = [this](Kind kind) {
        return [this, kind](const Request& req, Response& res, const httplib::ContentReader& reader) {
            handle_generate(kind, req, res, reader);
        };
    };
    server.Post("/v1/chat/completions", generate(Kind::Chat));
    server.Post("/v1/completions", generate(Kind::Completion));
}

void Routes::handle_generate(Kind kind, const Request& req, Response& res, const httplib::ContentReader& reader) {
    // The body, read up to the limit (a chunked body declares no length, so the count is checked as it comes).
    std::string body;
    bool too_big = false;
    reader([&](const char* data, size_t n) {
        if (body.size() + n > options_.max_body) {
            too_big = true;
            return false;
        }
        body.append(data, n);
        return true;
    });
    if (too_big) {
        send_error(res, 413, "The request body is over this server's limit of " + std::to_string(options_.max_body) +
                                 " bytes");
        res.set_header("Connection", "close");
        return;
    }
    if (stopping_.load()) {
        send_error(res, 503, "The server is shutting down");
        return;
    }

    ParsedRequest parsed;
    try {
        parsed = kind == Kind::Chat ? parse_chat_request(body, served_) : parse_completion_request(body, served_);
    } catch (const ApiError& e) {
        send_error(res, e.status, e.what(), e.param, e.code);
        return;
    }

    auto job = std::make_shared<Job>(std::move(parsed.gen));
    switch (engine_.submit(job)) {
    case Engine::Admit::Ok: break;
    case Engine::Admit::QueueFull:
        res.set_header("Retry-After", "1");
        send_error(res, 503, "The server is busy: every slot is generating and the queue is full; retry shortly");
        return;
    case Engine::Admit::ShuttingDown:
        send_error(res, 503, "The server is shutting down");
        return;
    }

    const ResponseHeader header = new_response(kind, served_.id);
    // When the response ends for any reason (done, client gone, server stopping), the job stops too.
    auto release = [job](bool) { job->cancel(); };
    if (parsed.stream) {
        res.set_header("Cache-Control", "no-cache");
        const bool include_usage = parsed.include_usage;
        auto first = std::make_shared<bool>(true);
        res.set_chunked_content_provider(
            "text/event-stream",
            [job, header, include_usage, first](size_t, DataSink& sink) {
                Job::Update u = job->wait(kPoll);
                if (!sink.is_writable()) {
                    job->cancel();
                    return false;
                }
                if (u.finished && u.finish != Finish::Stop && u.finish != Finish::Length) {
                    const std::string msg = u.finish == Finish::Error ? u.error : "the request was cancelled";
                    write(sink, sse(error_body(500, msg)));
                    sink.done();
                    return true;
                }
                if (*first && header.kind == Kind::Chat) {  // the role comes first, as OpenAI sends it
                    if (!write(sink, sse(stream_chunk(header, "", true, Finish::None)))) return false;
                    *first = false;
                }
                for (const std::string& piece : u.pieces)
                    if (!write(sink, sse(stream_chunk(header, piece, false, Finish::None)))) return false;
                if (u.finished) {
                    write(sink, sse(stream_chunk(header, "", false, u.finish)));
                    if (include_usage) write(sink, sse(usage_chunk(header, u.prompt_tokens, u.completion_tokens)));
                    write(sink, "data: [DONE]\n\n");
                    sink.done();
                }
                return true;
            },
            release);
        return;
    }

    // Not streamed: the whole answer at the end, but the wait still notices a client that left.
    auto text = std::make_shared<std::string>();
    res.set_chunked_content_provider(
        "application/json",
        [job, header, text](size_t, DataSink& sink) {
            Job::Update u = job->wait(kPoll);
            for (const std::string& piece : u.pieces) *text += piece;
            if (!sink.is_writable()) {
                job->cancel();
                return false;
            }
            if (!u.finished) return true;
            if (u.finish == Finish::Stop || u.finish == Finish::Length)
                write(sink, to_text(whole_response(header, *text, u.finish, u.prompt_tokens, u.completion_tokens)));
            else
                write(sink, to_text(error_body(500, u.finish == Finish::Error ? u.error : "the request was cancelled")));
            sink.done();
            return true;
        },
        release);
}

}  // namespace tessera::cli::serve
