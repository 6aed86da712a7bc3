#include "tools/serve_engine.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace tessera::cli::serve {

namespace {

void check(tessera_status s, const char* what) {
    if (s != TESSERA_OK) throw std::runtime_error(std::string(what) + ": " + tessera_last_error());
}

}  // namespace

// One KV cache and, while a request runs in it, that request's sampler and text filters.
struct Engine::Slot {
    tessera_session* session = nullptr;
    std::shared_ptr<Job> job;
    tessera_sampler* sampler = nullptr;
    tessera_detok_stream* detok = nullptr;         // token pieces -> whole UTF-8 characters
    tessera_stop_matcher* turn_stops = nullptr;    // the chat format's end-of-turn texts (chat only)
    tessera_stop_matcher* client_stops = nullptr;  // the request's "stop" strings
    size_t prompt_done = 0;                        // prompt tokens already in the cache
    int32_t generated = 0;
    bool at_start = true;  // nothing shown yet (a chat answer drops its leading word-marker space)

    void clear_request() {
        tessera_sampler_free(sampler);
        tessera_detok_stream_free(detok);
        tessera_stop_matcher_free(turn_stops);
        tessera_stop_matcher_free(client_stops);
        sampler = nullptr;
        detok = nullptr;
        turn_stops = client_stops = nullptr;
        job.reset();
        prompt_done = 0;
        generated = 0;
        at_start = true;
    }
    ~Slot() {
        clear_request();
        tessera_session_free(session);
    }

    bool stopped() const {
        return (turn_stops && tessera_stop_matcher_stopped(turn_stops)) ||
               (client_stops && tessera_stop_matcher_stopped(client_stops));
    }

    // Passes complete text through the stop matchers in turn; returns what may be shown now.
    std::string filter(std::string text) {
        for (tessera_stop_matcher* m : {turn_stops, client_stops}) {
            if (!m) continue;
            const char* out = nullptr;
            size_t len = 0;
            check(tessera_stop_matcher_push(m, text.data(), int64_t(text.size()), &out, &len), "stop strings");
            text.assign(out, len);
        }
        return trim_start(std::move(text));
    }

    // At the end: what the detokenizer and the matchers still hold back.
    std::string flush() {
        if (stopped()) return {};
        const char* out = nullptr;
        size_t len = 0;
        check(tessera_detok_stream_flush(detok, &out, &len), "detokenizing");
        std::string text(out, len);
        for (tessera_stop_matcher* m : {turn_stops, client_stops}) {
            if (!m) continue;
            check(tessera_stop_matcher_push(m, text.data(), int64_t(text.size()), &out, &len), "stop strings");
            text.assign(out, len);
            if (tessera_stop_matcher_stopped(m)) break;
            check(tessera_stop_matcher_flush(m, &out, &len), "stop strings");
            text.append(out, len);
        }
        return trim_start(std::move(text));
    }

    std::string trim_start(std::string text) {
        if (at_start && job->request().chat) {
            const size_t b = text.find_first_not_of(' ');
            text.erase(0, b == std::string::npos ? text.size() : b);
        }
        if (!text.empty()) at_start = false;
        return text;
    }
};

Engine::Engine(tessera_model* model, const EngineOptions& options) : model_(model), options_(options) {
    if (options_.n_parallel < 1) throw std::invalid_argument("--parallel must be at least 1");
    for (int i = 0; i < options_.n_parallel; ++i) {
        auto slot = std::make_unique<Slot>();
        check(tessera_session_create(model_, &options_.session, &slot->session), "creating a slot's session");
        slots_.push_back(std::move(slot));
    }
    n_ctx_ = tessera_session_n_ctx(slots_[0]->session);
    stats_.slots_total = options_.n_parallel;
    worker_ = std::thread([this] { run(); });
}

Engine::~Engine() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = cancel_all_ = exit_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

Engine::Admit Engine::submit(const std::shared_ptr<Job>& job) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return Admit::ShuttingDown;
        if (int(queue_.size()) >= options_.max_queue) return Admit::QueueFull;
        queue_.push_back(job);
        stats_.queue_depth = int(queue_.size());
    }
    cv_.notify_all();
    return Admit::Ok;
}

void Engine::drain(std::chrono::milliseconds grace) {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    auto idle = [&] { return queue_.empty() && stats_.slots_busy == 0; };
    if (!cv_.wait_for(lock, grace, idle)) {
        cancel_all_ = true;
        cv_.notify_all();
        // A step in flight finishes first: a prompt chunk or one token; bounded, but not by us.
        cv_.wait_for(lock, std::chrono::seconds(30), idle);
    }
}

EngineStats Engine::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

void Engine::release(Slot& slot, Finish finish, const std::string& error) {
    slot.job->finish(finish, error);
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (finish == Finish::Cancelled) ++stats_.cancelled;
        else if (finish == Finish::Error) ++stats_.failed;
        else ++stats_.finished;
        --stats_.slots_busy;
    }
    slot.clear_request();
}

bool Engine::admit_waiting() {
    std::vector<std::shared_ptr<Job>> dropped;
    bool cancel_all = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        cancel_all = cancel_all_;
        if (cancel_all) {
            dropped.assign(queue_.begin(), queue_.end());
            queue_.clear();
        }
        for (auto& slot : slots_) {
            if (slot->job || queue_.empty()) continue;
            std::shared_ptr<Job> job = queue_.front();
            queue_.pop_front();
            if (job->cancelled()) {  // its client left while it waited
                dropped.push_back(job);
                continue;
            }
            slot->job = job;
            ++stats_.slots_busy;
            stats_.prompt_tokens += job->request().prompt.size();
        }
        stats_.queue_depth = int(queue_.size());
        stats_.cancelled += dropped.size();
    }
    for (auto& job : dropped) job->finish(Finish::Cancelled);

    bool busy = false;
    for (auto& slot : slots_) {
        if (!slot->job) continue;
        if (cancel_all) {
            release(*slot, Finish::Cancelled);
            continue;
        }
        busy = true;
        if (slot->sampler) continue;  // already set up
        const GenRequest& r = slot->job->request();
        try {
            check(tessera_session_reset(slot->session), "resetting the slot");
            check(tessera_sampler_create(model_, &r.sampling, &slot->sampler), "creating the sampler");
            for (tessera_token t : r.prompt) check(tessera_sampler_accept(slot->sampler, t), "sampler");
            check(tessera_detok_stream_create(model_, &slot->detok), "detokenizing");
            if (r.chat)
                check(tessera_stop_matcher_create_chat(model_, options_.chat_format.c_str(), &slot->turn_stops),
                      "chat stop strings");
            if (!r.stops.empty()) {
                std::vector<const char*> stops;
                for (const auto& s : r.stops) stops.push_back(s.c_str());
                check(tessera_stop_matcher_create(stops.data(), int32_t(stops.size()), &slot->client_stops),
                      "stop strings");
            }
        } catch (const std::exception& e) {
            release(*slot, Finish::Error, e.what());
        }
    }
    return busy;
}

void Engine::advance(Slot& slot) {
    Job& job = *slot.job;
    if (job.cancelled()) return release(slot, Finish::Cancelled);
    const GenRequest& r = job.request();
    tessera_session* s = slot.session;

    if (slot.prompt_done < r.prompt.size()) {
        // One prompt chunk per step, so a long prompt does not stall the other slots' tokens.
        const size_t n = std::min(r.prompt.size() - slot.prompt_done, size_t(std::max(options_.session.n_batch, 1)));
        check(tessera_decode(s, r.prompt.data() + slot.prompt_done, int32_t(n)), "evaluating the prompt");
        slot.prompt_done += n;
        return;
    }

    tessera_token tok = 0;
    check(tessera_sample(slot.sampler, s, &tok), "sampling");
    if (!r.ignore_eos && tessera_model_is_eog(model_, tok)) {
        job.emit(slot.flush(), slot.generated);
        return release(slot, Finish::Stop);
    }
    ++slot.generated;
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.generated_tokens;
    }
    const char* piece = nullptr;
    size_t len = 0;
    check(tessera_detok_stream_push(slot.detok, tok, &piece, &len), "detokenizing");
    job.emit(slot.filter(std::string(piece, len)), slot.generated);
    if (slot.stopped()) return release(slot, Finish::Stop);
    if (slot.generated >= r.max_tokens || tessera_session_n_past(s) >= n_ctx_) {
        job.emit(slot.flush(), slot.generated);
        return release(slot, slot.stopped() ? Finish::Stop : Finish::Length);
    }
    check(tessera_decode(s, &tok, 1), "decoding");
}

void Engine::run() {
    for (;;) {
        if (admit_waiting()) {
            for (auto& slot : slots_) {
                if (!slot->job) continue;
                try {
                    advance(*slot);
                } catch (const std::exception& e) {
                    release(*slot, Finish::Error, e.what());
                }
            }
        }
        std::unique_lock<std::mutex> lock(mu_);
        if (stats_.slots_busy == 0) {
            cv_.notify_all();  // drain() waits for idle
            if (exit_ && queue_.empty()) return;
            cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return !queue_.empty() || exit_; });
        }
    }
}

}  // namespace tessera::cli::serve
