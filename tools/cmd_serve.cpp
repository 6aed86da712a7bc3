// `tessera serve -m MODEL`: an OpenAI-compatible HTTP server (chat and text completions, streamed or not,
// /v1/models, /health, /metrics and a chat page at /). Requests run in --parallel slots; more wait in a
// bounded queue; past that the server answers 503. SIGINT/SIGTERM stop it: no new requests, running ones
// get --shutdown-timeout seconds to finish, then are cancelled, and the process exits 0.
// The files: serve_engine (slots, scheduling, all model work), serve_routes (HTTP), serve_openai (the
// wire format), serve_page (the chat page).
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "tools/command.h"
#include "tools/serve_engine.h"
#include "tools/serve_routes.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

// The name requests use for the model: the file's name without folder and ".gguf".
std::string model_id(const std::string& path) {
    std::string id = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    if (id.size() > 5 && id.compare(id.size() - 5, 5, ".gguf") == 0) id.resize(id.size() - 5);
    return id;
}

// The chat format: --template, else what the model shows; "" when it has none (chat requests then say so).
std::string resolve_chat_format(tessera_model* m, const std::string& name) {
    const char* chosen = nullptr;
    const tessera_status st = tessera_chat_template_resolve(m, name.empty() ? nullptr : name.c_str(), &chosen);
    if (st == TESSERA_OK) {
        // The model's own template is unusable and a named format stands in: say why.
        const char* note = tessera_last_error();
        if (name.empty() && note && std::strncmp(note, "warning: ", 9) == 0) std::fprintf(stderr, "tessera serve: %s\n", note);
        return chosen;
    }
    if (!name.empty()) throw UsageError(std::string("--chat-template: ") + tessera_last_error());
    std::fprintf(stderr, "tessera serve: %s; /v1/chat/completions will refuse requests (see --chat-template)\n",
                 tessera_last_error());
    return "";
}

int serve(int argc, char** argv) {
    SessionFlags sf;
    std::string host = "127.0.0.1", api_key, template_name, alias;
    int port = 8080, parallel = 1, queue = 16, max_body_kib = 1024, shutdown_s = 10;
    bool verbose = false;
    ArgParser p("serve", "-m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--api-key KEY]",
                "An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions (stream: true "
                "as server-sent events), GET /v1/models, /health, /metrics, and a chat page at /.");
    sf.add_to(p);
    p.option("--host", &host, "ADDR", "address to listen on (default 127.0.0.1: this machine only)");
    p.option("--port", &port, "N", "port (default 8080; 0 = any free port, printed at start)", 0, 65535);
    p.option("-np,--parallel", &parallel, "N", "requests generated at the same time, batched together (one KV cache holds them; default 1)",
             1, 256);
    p.option("--queue", &queue, "N", "requests that may wait for a slot; more get 503 (default 16)", 0, 4096);
    p.option("--api-key", &api_key, "KEY",
             "require 'Authorization: Bearer KEY' on /v1/* and /metrics (default: $TESSERA_API_KEY, else none)");
    p.option("--chat-template,--template", &template_name, "NAME",
             "chat format instead of the model's own template (jinja = the model's; default: the model's template)");
    p.option("--alias", &alias, "NAME", "the model's name in the API (default: the file name without .gguf)");
    p.option("--max-body", &max_body_kib, "KIB", "largest request body in KiB (default 1024)", 1, 1 << 20);
    p.option("--shutdown-timeout", &shutdown_s, "S",
             "on SIGINT/SIGTERM, seconds running requests get to finish before they are cancelled (default 10)", 0,
             3600);
    p.flag("-v,--verbose", &verbose, "one line per request on stderr");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (api_key.empty())
        if (const char* env = std::getenv("TESSERA_API_KEY")) api_key = env;

    // SIGINT and SIGTERM are blocked in every thread (the ones started below inherit the mask) and taken
    // by one waiter, which runs the orderly stop. A vanished client must not kill the process.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    ModelHandle model;
    sf.open_model(&model.m);
    serve::ServedModel served;
    served.model = model.m;
    served.id = alias.empty() ? model_id(sf.model) : alias;
    served.chat_format = resolve_chat_format(model.m, template_name);

    serve::EngineOptions eo;
    eo.n_parallel = parallel;
    eo.max_queue = queue;
    eo.session = sf.params();
    eo.chat_format = served.chat_format;
    serve::Engine engine(model.m, eo);
    served.n_ctx = engine.n_ctx();

    serve::RouteOptions ro;
    ro.api_key = api_key;
    ro.max_body = size_t(max_body_kib) * 1024;
    ro.verbose = verbose;
    serve::Routes routes(engine, served, ro);

    httplib::Server server;
    // Every running or queued request holds a connection thread while it streams; a few more serve
    // /health, /metrics and the refusals, so a full server still answers 503 rather than hanging.
    const size_t n_threads = size_t(parallel + queue + 8);
    server.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
    server.set_read_timeout(10, 0);
    server.set_write_timeout(10, 0);
    // Idle keep-alive connections hold a thread and delay the stop by up to this long.
    server.set_keep_alive_timeout(2);
    server.set_payload_max_length(ro.max_body);
    // Accepted sockets inherit TCP_NODELAY from the listening one: a stream's small chunks go out at once
    // instead of waiting on the client's delayed ACK.
    server.set_socket_options([](int sock) {
        httplib::default_socket_options(sock);
        const int one = 1;
        setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    });
    routes.install(server);

    const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
    if (bound < 0) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + " (in use?)");
    std::fprintf(stderr, "tessera serve: listening on http://%s:%d (model '%s', %d slot%s of %d tokens, chat format %s)\n",
                 host.c_str(), bound, served.id.c_str(), parallel, parallel == 1 ? "" : "s", served.n_ctx,
                 served.chat_format.empty() ? "none" : served.chat_format.c_str());
    std::fflush(stderr);

    std::atomic<bool> listening_done{false};
    std::thread stopper([&] {
        const timespec tick{0, 200 * 1000 * 1000};
        while (!listening_done.load()) {
            const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
            if (sig != SIGINT && sig != SIGTERM) continue;
            std::fprintf(stderr, "tessera serve: %s: finishing running requests (up to %d s), then stopping\n",
                         sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_s);
            routes.set_stopping();
            engine.drain(std::chrono::seconds(shutdown_s));
            // stop() only acts on a running server; the signal may come before listening began.
            while (!listening_done.load()) {
                if (server.is_running()) {
                    server.stop();
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            return;
        }
    });
    server.listen_after_bind();
    listening_done.store(true);
    stopper.join();
    std::fprintf(stderr, "tessera serve: stopped\n");
    return 0;
}

int cmd_serve(int argc, char** argv) {
    return run_guarded("serve", [&] { return serve(argc, argv); });
}

RegisterCommand reg("serve", "OpenAI-compatible HTTP server (-m MODEL [--port N] [--parallel N])", cmd_serve);

}  // namespace

}  // namespace tessera::cli
