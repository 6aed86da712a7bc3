// The server's engine: a fixed set of slots (sequences of one session whose KV cache holds them side by
// side), a bounded queue of waiting requests, and one worker thread that owns every C API handle and does
// all the computing, so the HTTP threads never touch the model. Each step the worker admits queued
// requests into free slots, drops cancelled ones (their slot is free at once), and runs ONE forward pass
// for every busy slot (continuous batching): the next token of each generating slot, and prompt chunks of
// newly admitted ones in what is left of the batch. The weights are read once per step for all of them.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <mutex>
#include <condition_variable>
#include <thread>
#include <vector>

#include "tessera.h"
#include "tools/serve_job.h"

namespace tessera::cli::serve {

struct EngineOptions {
    int n_parallel = 1;  // slots: requests generated at the same time
    int max_queue = 16;  // requests waiting for a slot; more are refused (HTTP 503)
    tessera_session_params session{};
    std::string chat_format;  // the chat format's name (tessera_chat_template_resolve), for its end-of-turn texts
};

struct EngineStats {
    uint64_t finished = 0, cancelled = 0, failed = 0;  // requests that ended each way
    uint64_t prompt_tokens = 0, generated_tokens = 0;
    int queue_depth = 0, slots_busy = 0, slots_total = 0;
    uint64_t batches = 0, mixed_batches = 0;  // forward passes; those with a prompt chunk beside decode tokens
    int batch_sequences_max = 0;              // the most slots one pass served
    // Where the worker's busy time goes: forward passes (tessera_decode_batch) and the rest of each step
    // (admitting, sampling, detokenizing, handing text to the HTTP threads).
    double compute_seconds = 0, step_other_seconds = 0;
};

class Engine {
public:
    // Creates the session (one sequence per slot, each with the whole context) and starts the worker.
    Engine(tessera_model* model, const EngineOptions& options);
    ~Engine();  // cancels what runs and joins the worker
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    enum class Admit { Ok, QueueFull, ShuttingDown };
    Admit submit(const std::shared_ptr<Job>& job);

    // Stops admitting, lets running and queued requests finish for up to `grace`, then cancels the rest;
    // returns once no slot is busy.
    void drain(std::chrono::milliseconds grace);

    EngineStats stats() const;
    int32_t n_ctx() const { return n_ctx_; }

private:
    struct Slot;
    void run();
    bool admit_waiting();  // moves queued jobs into free slots; true when any slot is busy
    void warm_up();        // one token through the model before serving (pages the weights in)
    void step();           // one forward pass for every busy slot
    // After a pass: the slot's logits row -> its next token (sampled, shown, maybe the end).
    void take_token(Slot& slot, int32_t row);
    void release(Slot& slot, Finish finish, const std::string& error = "");

    tessera_model* model_;
    EngineOptions options_;
    tessera_session* session_ = nullptr;  // every slot's sequence
    int32_t n_ctx_ = 0;
    std::vector<std::unique_ptr<Slot>> slots_;

    mutable std::mutex mu_;  // guards queue_, stopping_, cancel_all_ and stats_
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    bool stopping_ = false;    // no new requests
    bool cancel_all_ = false;  // end everything now
    bool exit_ = false;        // the worker leaves once idle
    EngineStats stats_;
    std::thread worker_;
};

}  // namespace tessera::cli::serve
