// One generation request in flight between an HTTP handler thread (which reads its text as it comes) and the
// engine's worker thread (which produces it). Everything the two sides share sits behind one mutex; the
// handler waits with a timeout so it can notice a client that went away.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tessera.h"

namespace tessera::cli::serve {

// What a request asks for, already validated and tokenized by the HTTP side.
struct GenRequest {
    std::vector<tessera_token> prompt;
    tessera_sampler_params sampling{};
    int32_t max_tokens = 0;          // >= 1; generation also ends when the context is full
    std::vector<std::string> stops;  // the client's stop strings
    bool chat = false;               // end at the chat format's end-of-turn texts; no leading space in the answer
    bool ignore_eos = false;         // keep going past end-of-generation tokens (benchmarks, tests)
};

enum class Finish { None, Stop, Length, Cancelled, Error };

// OpenAI's finish_reason for a finished request ("stop", "length"); cancelled and failed requests have none.
inline const char* finish_reason(Finish f) {
    switch (f) {
    case Finish::Stop: return "stop";
    case Finish::Length: return "length";
    default: return nullptr;
    }
}

class Job {
public:
    explicit Job(GenRequest r) : request_(std::move(r)) {}
    const GenRequest& request() const { return request_; }

    // ---- the HTTP side ----
    struct Update {
        std::vector<std::string> pieces;  // text produced since the previous wait, one piece per token
                                          // (a token that completes no character yet adds none)
        bool finished = false;  // no more text will come
        Finish finish = Finish::None;
        int32_t prompt_tokens = 0, completion_tokens = 0;
        std::string error;  // set with Finish::Error
    };
    // Returns as soon as there is new text or the job has finished, or after `timeout` with nothing.
    Update wait(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, timeout, [&] { return !pending_.empty() || finish_ != Finish::None; });
        Update u;
        u.pieces.swap(pending_);
        u.finished = finish_ != Finish::None;
        u.finish = finish_;
        u.prompt_tokens = int32_t(request_.prompt.size());
        u.completion_tokens = completion_tokens_;
        u.error = error_;
        return u;
    }
    // The client went away (or the server is stopping): the engine frees the slot at its next step.
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

    // ---- the engine side ----
    void emit(const std::string& text, int32_t completion_tokens) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (!text.empty()) pending_.push_back(text);
            completion_tokens_ = completion_tokens;
        }
        cv_.notify_all();
    }
    void finish(Finish f, const std::string& error = "") {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (finish_ != Finish::None) return;
            finish_ = f;
            error_ = error;
        }
        cv_.notify_all();
    }
    bool finished() const {
        std::lock_guard<std::mutex> lock(mu_);
        return finish_ != Finish::None;
    }

private:
    const GenRequest request_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> pending_;
    int32_t completion_tokens_ = 0;
    Finish finish_ = Finish::None;
    std::string error_;
    std::atomic<bool> cancelled_{false};
};

}  // namespace tessera::cli::serve
