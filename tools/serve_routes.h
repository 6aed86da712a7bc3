// The server's HTTP side: routes, the API key check, request body limits, OpenAI errors, streaming answers
// out of the engine's jobs, and the counters /metrics reports. It only reads and writes HTTP; all model
// work is the engine's.
#pragma once
#include <atomic>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "tools/serve_engine.h"
#include "tools/serve_openai.h"

namespace httplib {
class Server;
class ContentReader;
struct Request;
struct Response;
}  // namespace httplib

namespace tessera::cli::serve {

struct RouteOptions {
    std::string api_key;             // "" = no key needed
    size_t max_body = size_t(1) << 20;  // request bodies over this are refused (413) before they are read whole
    bool verbose = false;            // one line per request on stderr
};

class Routes {
public:
    Routes(Engine& engine, ServedModel served, RouteOptions options);
    void install(httplib::Server& server);
    // From now on /health says so and generation requests get 503.
    void set_stopping() { stopping_.store(true); }
    std::string metrics_text() const;

private:
    void handle_generate(Kind kind, const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader);
    void count_response(int status);

    Engine& engine_;
    const ServedModel served_;
    const RouteOptions options_;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mu_;
    std::map<int, uint64_t> responses_;  // by HTTP status
};

// The chat page served at / (serve_page.cpp).
extern const char* const kChatPage;

}  // namespace tessera::cli::serve
