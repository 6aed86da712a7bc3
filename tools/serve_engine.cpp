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

// One sequence of the session's KV cache and, while a request runs in it, that request's sampler and text
// filters.
struct Engine::Slot {
    int32_t seq = 0;  // the slot's sequence in the session
    std::shared_ptr<Job> job;
    tessera_sampler* sampler = nullptr;
    tessera_detok_stream* detok = nullptr;         // token pieces -> whole UTF-8 characters
    tessera_stop_matcher* turn_stops = nullptr;    // the chat format's end-of-turn texts (chat only)
    tessera_stop_matcher* client_stops = nullptr;  // the request's "stop" strings
    size_t prompt_done = 0;                        // prompt tokens already in the cache
    bool has_next = false;                         // a sampled token waits to go into the next pass
    tessera_token next = 0;
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
        has_next = false;
        generated = 0;
        at_start = true;
    }
    ~Slot() { clear_request(); }

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
    tessera_session_params sp = options_.session;
    sp.n_seq = options_.n_parallel;
    check(tessera_session_create(model_, &sp, &session_), "creating the session");
    for (int i = 0; i < options_.n_parallel; ++i) {
        auto slot = std::make_unique<Slot>();
        slot->seq = i;
        slots_.push_back(std::move(slot));
    }
    n_ctx_ = tessera_session_n_ctx(session_);
    stats_.slots_total = options_.n_parallel;
    warm_up();
    worker_ = std::thread([this] { run(); });
}

Engine::~Engine() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = cancel_all_ = exit_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    slots_.clear();
    tessera_session_free(session_);
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
    tessera_seq_clear(session_, slot.seq);  // its cells are free for the next request
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
            if (r.prompt.empty()) throw std::runtime_error("the prompt has no tokens");
            check(tessera_seq_clear(session_, slot->seq), "clearing the slot");
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

void Engine::warm_up() {
    // One token through the model before the first request: it pages the weights in (they are mapped
    // from the file) and builds the graph of a lone decode step, so the first client does not wait for
    // either. Its cells are cleared again; a model that cannot decode fails here, before serving.
    tessera_token bos = tessera_model_bos(model_);
    if (bos < 0) bos = 0;
    const int32_t seq = 0;
    check(tessera_decode_batch(session_, &bos, &seq, nullptr, 1), "warming up");
    check(tessera_seq_clear(session_, seq), "warming up");
}

void Engine::step() {
    const auto t_start = std::chrono::steady_clock::now();
    // The batch: one token of every slot that is generating, then prompt chunks of slots still reading
    // their prompt in what is left of n_batch. A prompt chunk asks for logits only when it ends the
    // prompt (the first token is sampled from them).
    const size_t budget = size_t(std::max(options_.session.n_batch, 1));
    std::vector<tessera_token> tokens;
    std::vector<int32_t> seqs;
    std::vector<int8_t> want;
    std::vector<Slot*> in_batch;
    bool decoding = false, prefilling = false;
    for (auto& slot : slots_) {
        if (!slot->job) continue;
        if (slot->job->cancelled()) {
            release(*slot, Finish::Cancelled);
            continue;
        }
        if (!slot->has_next) continue;
        tokens.push_back(slot->next);
        seqs.push_back(slot->seq);
        want.push_back(1);
        in_batch.push_back(slot.get());
        slot->has_next = false;
        decoding = true;
    }
    for (auto& slot : slots_) {
        if (!slot->job || tokens.size() >= budget) continue;
        const std::vector<tessera_token>& prompt = slot->job->request().prompt;
        if (slot->prompt_done >= prompt.size()) continue;
        const size_t n = std::min(prompt.size() - slot->prompt_done, budget - tokens.size());
        for (size_t i = 0; i < n; ++i) {
            tokens.push_back(prompt[slot->prompt_done + i]);
            seqs.push_back(slot->seq);
            want.push_back(0);
        }
        slot->prompt_done += n;
        want.back() = slot->prompt_done == prompt.size() ? 1 : 0;
        in_batch.push_back(slot.get());
        prefilling = true;
    }
    if (tokens.empty()) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.batches;
        if (decoding && prefilling) ++stats_.mixed_batches;
        stats_.batch_sequences_max = std::max(stats_.batch_sequences_max, int(in_batch.size()));
    }

    const auto t_compute = std::chrono::steady_clock::now();
    const tessera_status status =
        tessera_decode_batch(session_, tokens.data(), seqs.data(), want.data(), int32_t(tokens.size()));
    const auto t_computed = std::chrono::steady_clock::now();
    // Counted at the end of the step (every path out of it): the pass, and the rest of the step around it.
    struct Account {
        Engine& e;
        std::chrono::steady_clock::time_point start, compute, computed;
        ~Account() {
            const auto end = std::chrono::steady_clock::now();
            std::lock_guard<std::mutex> lock(e.mu_);
            e.stats_.compute_seconds += std::chrono::duration<double>(computed - compute).count();
            e.stats_.step_other_seconds += std::chrono::duration<double>((compute - start) + (end - computed)).count();
        }
    } account{*this, t_start, t_compute, t_computed};
    if (status != TESSERA_OK) {
        // Nothing of the pass was kept. A request whose own tokens cannot run (its context is full, ...)
        // must not take the others down: each slot retries alone, and only the ones that fail again end.
        for (Slot* slot : in_batch) {
            std::vector<tessera_token> own;
            std::vector<int32_t> own_seq;
            std::vector<int8_t> own_want;
            for (size_t i = 0; i < tokens.size(); ++i)
                if (seqs[i] == slot->seq) own.push_back(tokens[i]), own_seq.push_back(seqs[i]), own_want.push_back(want[i]);
            if (tessera_decode_batch(session_, own.data(), own_seq.data(), own_want.data(), int32_t(own.size())) !=
                TESSERA_OK) {
                release(*slot, Finish::Error, std::string("evaluating: ") + tessera_last_error());
                continue;
            }
            try {
                if (tessera_n_logit_rows(session_) > 0) take_token(*slot, 0);
            } catch (const std::exception& e) {
                release(*slot, Finish::Error, e.what());
            }
        }
        return;
    }
    const int32_t rows = tessera_n_logit_rows(session_);
    for (int32_t row = 0; row < rows; ++row) {
        const int32_t seq = tessera_logits_seq(session_, row);
        Slot& slot = *slots_[size_t(seq)];
        if (!slot.job) continue;
        try {
            take_token(slot, row);
        } catch (const std::exception& e) {
            release(slot, Finish::Error, e.what());
        }
    }
}

void Engine::take_token(Slot& slot, int32_t row) {
    Job& job = *slot.job;
    const GenRequest& r = job.request();
    tessera_token tok = 0;
    check(tessera_sample_row(slot.sampler, session_, row, &tok), "sampling");
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
    if (slot.generated >= r.max_tokens || tessera_seq_n_past(session_, slot.seq) >= n_ctx_) {
        job.emit(slot.flush(), slot.generated);
        return release(slot, slot.stopped() ? Finish::Stop : Finish::Length);
    }
    slot.next = tok;  // decoded in the next pass, beside the other slots' tokens
    slot.has_next = true;
}

void Engine::run() {
    for (;;) {
        if (admit_waiting()) {
            try {
                step();
            } catch (const std::exception& e) {  // not one slot's fault: end every request in the pass
                for (auto& slot : slots_)
                    if (slot->job) release(*slot, Finish::Error, e.what());
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
