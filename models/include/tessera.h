/* tessera.h: the C API of libtessera.
 *
 * Plain C, small and stable. Every function that can fail returns a tessera_status;
 * TESSERA_OK is 0. On failure, tessera_last_error() returns a message naming the
 * problem (per thread, valid until the next failing call on that thread). No function
 * exits or aborts on bad input; C++ exceptions never cross this boundary.
 *
 * Typical use:
 *   tessera_model* m;   tessera_model_open("model.gguf", NULL, &m);
 *   tessera_session* s; tessera_session_create(m, NULL, &s);
 *   tessera_tokenize(m, "Once upon a time", -1, 1, 0, ids, 64, &n);
 *   tessera_decode(s, ids, n);
 *   tessera_sampler* smp; tessera_sampler_create(m, NULL, &smp);
 *   loop: tessera_sample(smp, s, &tok); tessera_token_to_piece(...); tessera_decode(s, &tok, 1);
 *   tessera_sampler_free(smp); tessera_session_free(s); tessera_model_free(m);
 */
#ifndef TESSERA_H
#define TESSERA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t tessera_token;
typedef struct tessera_model tessera_model;
typedef struct tessera_session tessera_session;
typedef struct tessera_sampler tessera_sampler;

typedef enum tessera_status {
    TESSERA_OK = 0,
    TESSERA_ERR_INVALID_ARGUMENT = 1, /* a null pointer, bad id, bad size or option */
    TESSERA_ERR_FILE = 2,             /* the model file cannot be read, or is malformed */
    TESSERA_ERR_UNSUPPORTED = 3,      /* architecture, type, backend not supported */
    TESSERA_ERR_CONTEXT_FULL = 4,     /* the session's context cannot hold the tokens */
    TESSERA_ERR_BUFFER_TOO_SMALL = 5, /* output buffer too small; the size needed is returned */
    TESSERA_ERR_OUT_OF_MEMORY = 6,
    TESSERA_ERR_INTERNAL = 7
} tessera_status;

/* The message of the last failure on this thread ("" when none). */
const char* tessera_last_error(void);
const char* tessera_status_name(tessera_status status);
const char* tessera_version(void);
/* The kernel level the cpu backend picks on this machine: "portable", "avx2", "avx512" or "amx" (the best
   this CPU has, or the one the TESSERA_CPU environment variable names). NULL when TESSERA_CPU names an
   unknown level or one this CPU lacks; tessera_last_error() then says which. */
const char* tessera_cpu_level(void);

/* ---- models ---- */
typedef struct tessera_model_params {
    /* Where the weights live: "cpu" (NULL; also right for "reference": both read the file mapping in
     * place) or "cuda" (every weight is uploaded to the GPU once, here). Sessions on this model must use
     * a backend of the same kind. */
    const char* backend;
    /* Called during an upload to a device with the weight bytes done so far and the total; NULL = none. */
    void (*progress)(uint64_t done, uint64_t total, void* user);
    void* progress_user;
    /* With a GPU backend: how many layers, from the first, have their weights on the GPU; the rest compute
     * on the CPU from the file mapping, so a model larger than the GPU still runs. 0 or less = all (the
     * default, so a zero-initialized struct means all). */
    int32_t gpu_layers;
} tessera_model_params;
tessera_model_params tessera_model_default_params(void);

/* params may be NULL for the defaults. */
tessera_status tessera_model_open(const char* path, const tessera_model_params* params, tessera_model** out);
void tessera_model_free(tessera_model* model);

const char* tessera_model_arch(const tessera_model* model); /* "llama" */
int32_t tessera_model_n_vocab(const tessera_model* model);
int32_t tessera_model_n_ctx_train(const tessera_model* model);
int32_t tessera_model_n_embd(const tessera_model* model);
int32_t tessera_model_n_layer(const tessera_model* model);
uint64_t tessera_model_size(const tessera_model* model); /* bytes of all weights */
/* Bytes of weights one decoded token reads (every matrix once, one embedding row). */
uint64_t tessera_model_decode_bytes(const tessera_model* model);
/* Bytes of weights repacked or copied at load into the cpu backend's own memory (AMX tiles, interleaved
   rows, float weights on huge pages); they replace those weights' pages of the file in memory. 0 when
   none were. */
uint64_t tessera_model_repacked_bytes(const tessera_model* model);
tessera_token tessera_model_bos(const tessera_model* model); /* -1 when none */
tessera_token tessera_model_eos(const tessera_model* model);
/* 1 when the token ends generation (EOS, EOT, end-of-turn tokens). */
int tessera_model_is_eog(const tessera_model* model, tessera_token token);

/* Any metadata key as text (numbers formatted, arrays abbreviated), snprintf-style: writes at most
 * buf_size bytes including the terminating NUL and returns the full length, or -1 when the key is absent. */
int32_t tessera_model_meta_str(const tessera_model* model, const char* key, char* buf, size_t buf_size);

/* ---- tokens ---- */
/* text_len -1 = NUL-terminated. add_special: BOS/EOS as the model asks. parse_special: recognize control
 * token texts. Writes up to n_max ids; *n_out = the count needed (TESSERA_ERR_BUFFER_TOO_SMALL if > n_max). */
tessera_status tessera_tokenize(const tessera_model* model, const char* text, int32_t text_len, int add_special,
                                int parse_special, tessera_token* tokens, int32_t n_max, int32_t* n_out);
/* The bytes of one token (may be part of a UTF-8 character). NUL-terminated; *len_out = bytes without NUL. */
tessera_status tessera_token_to_piece(const tessera_model* model, tessera_token token, char* buf, size_t buf_size,
                                      size_t* len_out);
tessera_status tessera_detokenize(const tessera_model* model, const tessera_token* tokens, int32_t n_tokens,
                                  char* buf, size_t buf_size, size_t* len_out);

/* ---- sessions ---- */
typedef enum tessera_cache_type {
    TESSERA_CACHE_F16 = 0,
    TESSERA_CACHE_F32 = 1,
    TESSERA_CACHE_Q8_0 = 2
} tessera_cache_type;

typedef struct tessera_session_params {
    int32_t n_ctx;      /* 0 = the model's training context */
    int32_t n_threads;  /* 0 = physical cores */
    int32_t n_batch;    /* prefill chunk; 0 = 512 */
    tessera_cache_type cache_type;
    const char* backend; /* "cpu" (NULL), "reference", or "cuda" (the model must be opened for "cuda") */
    int logits_all;      /* keep logits for every token of a decode call (evaluation) */
    int capture_attention; /* keep what each attention layer saw, for tessera_attention_map (attn-viz) */
    int32_t n_seq;         /* sequences the cache holds side by side, each with n_ctx positions (a server's
                              slots, see tessera_decode_batch); 0 = 1 */
} tessera_session_params;
tessera_session_params tessera_session_default_params(void);

tessera_status tessera_session_create(tessera_model* model, const tessera_session_params* params,
                                      tessera_session** out);
void tessera_session_free(tessera_session* session);

/* Runs the tokens at the next positions of sequence 0 (prefill in chunks of n_batch). A full context is
 * TESSERA_ERR_CONTEXT_FULL and leaves the session unchanged (no shifting). */
tessera_status tessera_decode(tessera_session* session, const tessera_token* tokens, int32_t n_tokens);

/* ---- several sequences in one forward pass (sessions with n_seq > 1) ----
 * Token i goes to sequence seq_ids[i] (in [0, n_seq)) at that sequence's next position; the tokens of one
 * sequence keep their order, sequences may interleave (a prompt chunk of one beside one new token of each
 * of the others). Every token's query sees only its own sequence. want_logits: one flag per token, nonzero
 * = keep its logits (NULL: the last token of each sequence in the call). The logits rows then follow in
 * token order; tessera_logits_seq names a row's sequence. Calls longer than n_batch run in chunks. A full
 * context in any sequence is TESSERA_ERR_CONTEXT_FULL; on any error no sequence changes. */
tessera_status tessera_decode_batch(tessera_session* session, const tessera_token* tokens, const int32_t* seq_ids,
                                    const int8_t* want_logits, int32_t n_tokens);
int32_t tessera_logits_seq(const tessera_session* session, int32_t row); /* -1 on a bad row */
int32_t tessera_session_n_seq(const tessera_session* session);
int32_t tessera_seq_n_past(const tessera_session* session, int32_t seq); /* -1 on a bad sequence */
/* Keeps the first n_keep tokens of a sequence (0: empties it, its cells free for a new request). */
tessera_status tessera_seq_truncate(tessera_session* session, int32_t seq, int32_t n_keep);
tessera_status tessera_seq_clear(tessera_session* session, int32_t seq);
/* dst then holds what src holds (a prompt decoded once, then continued two ways); dst's tokens are dropped. */
tessera_status tessera_seq_copy(tessera_session* session, int32_t src, int32_t dst);
/* Logits (n_vocab floats) of row `row` of the last decode: 0..n-1 with logits_all, else only 0
 * (the last token). -1 = the last row. NULL on a bad row (see tessera_last_error). Valid until the next decode. */
const float* tessera_get_logits(tessera_session* session, int32_t row);
int32_t tessera_n_logit_rows(const tessera_session* session);

int32_t tessera_session_n_past(const tessera_session* session); /* tokens in the cache (sequence 0) */

/* ---- looking inside: attention maps (sessions created with capture_attention) ----
 * The fused attention never stores its probabilities; these are recomputed from what each layer's
 * attention read in the last decode call (queries after RoPE and norms, cached keys, positions) with
 * the op's own mask, window, scale and softcap. Layers count in execution order. */
int32_t tessera_attention_n_layers(const tessera_session* session); /* 0 before a decode or without capture */
tessera_status tessera_attention_layer_info(const tessera_session* session, int32_t layer, int32_t* n_head,
                                            int32_t* n_kv_head, int32_t* window /* 0 = none */);
/* The map of (layer, head): n_query rows (the last decode call's tokens, positions first_query ..),
 * n_key columns (key positions 0 .., causal models: first_query + n_query), row-major into out.
 * *n_query, *n_key and *first_query are always set; out too small (or NULL) is TESSERA_ERR_BUFFER_TOO_SMALL. */
tessera_status tessera_attention_map(const tessera_session* session, int32_t layer, int32_t head, float* out,
                                     size_t out_floats, int32_t* n_query, int32_t* n_key, int32_t* first_query);
int32_t tessera_session_n_ctx(const tessera_session* session);
/* Keeps the first n_keep tokens of the cache (sequence 0; chat: keep the prompt prefix). */
tessera_status tessera_session_truncate(tessera_session* session, int32_t n_keep);
/* Empties every sequence. */
tessera_status tessera_session_reset(tessera_session* session);
/* The KV cache's size: bytes per token (all layers, K and V) and in total. */
uint64_t tessera_session_cache_bytes_per_token(const tessera_session* session);
uint64_t tessera_session_cache_bytes(const tessera_session* session);
/* The KV cache split by layer kind (full layers, window-layer rings, MLA latent rows beside what
 * per-head K and V would need), one line of text. Valid until the next call on this session. */
const char* tessera_session_cache_summary(tessera_session* session);

/* ---- sampling ---- */
typedef struct tessera_sampler_params {
    float temperature;    /* <= 0: greedy (argmax, ties to the lowest id) */
    int32_t top_k;        /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off */
    float frequency_penalty, presence_penalty; /* 0 = off */
    int32_t penalty_last_n; /* tokens looked back for penalties */
    uint64_t seed;
} tessera_sampler_params;
tessera_sampler_params tessera_sampler_default_params(void);

tessera_status tessera_sampler_create(const tessera_model* model, const tessera_sampler_params* params,
                                      tessera_sampler** out);
void tessera_sampler_free(tessera_sampler* sampler);
/* Picks a token from the session's last logits row and records it for the penalties. */
tessera_status tessera_sample(tessera_sampler* sampler, tessera_session* session, tessera_token* out);
/* The same from logits row `row` of the last decode (a batch: each sequence samples its own row). */
tessera_status tessera_sample_row(tessera_sampler* sampler, tessera_session* session, int32_t row,
                                  tessera_token* out);
/* Records a token the caller chose itself (e.g. the prompt) for the penalties. */
tessera_status tessera_sampler_accept(tessera_sampler* sampler, tessera_token token);

/* ---- vocab-only models ---- */
/* Opens only a GGUF file's metadata and vocabulary (tokenizer.*), e.g. a vocab-only file without tensors.
 * Tokenize, detokenize, token pieces, BOS/EOS, meta_str, n_vocab and arch work; n_layer, size etc. report 0;
 * tessera_session_create refuses such a model (TESSERA_ERR_INVALID_ARGUMENT, saying why). Free with
 * tessera_model_free. A file without a usable vocabulary is TESSERA_ERR_FILE. */
tessera_status tessera_vocab_open(const char* path, tessera_model** out);
/* 1 when the model came from tessera_vocab_open. */
int tessera_model_is_vocab_only(const tessera_model* model);
/* tessera_token_to_piece, with render_special = 1 showing control tokens' text (e.g. "<s>") instead of "". */
tessera_status tessera_token_to_piece_ext(const tessera_model* model, tessera_token token, int render_special,
                                          char* buf, size_t buf_size, size_t* len_out);

/* ---- chat ---- */
typedef struct tessera_chat_message {
    const char* role;    /* "system", "user" or "assistant" */
    const char* content; /* NUL-terminated */
} tessera_chat_message;

/* What formats chat prompts for `model`. template_override (NULL or "" = none) is a format name ("chatml",
 * ...; see tessera_chat_template_names), "jinja" for the model's own tokenizer.chat_template, or Jinja template
 * text itself (anything containing "{{" or "{%"). Without one: the model's tokenizer.chat_template, rendered
 * as Hugging Face renders it ("jinja"), else (no template, or one that fails to parse or render) the named
 * format its template text or its special tokens suggest. *name_out = "jinja" or the format's name (static
 * storage). When the model's template is present but unusable the call still succeeds with the named
 * fallback, and tessera_last_error() then starts with "warning: " and says why.
 * model may be NULL when template_override is given. An unknown name or a broken override template is
 * TESSERA_ERR_INVALID_ARGUMENT (naming the line and column); a model whose format cannot be told is
 * TESSERA_ERR_UNSUPPORTED. */
tessera_status tessera_chat_template_resolve(const tessera_model* model, const char* template_override,
                                             const char** name_out);
/* The known format names, comma-separated (static storage). */
const char* tessera_chat_template_names(void);
/* The prompt for the conversation msgs[0..n_msgs) as chosen above; with add_generation_prompt it ends where
 * the assistant's answer begins. A template's leading BOS text is left out (tokenization adds BOS), and so is
 * a trailing EOS; system messages are folded into the next user message for templates without a system
 * role. Tokenize it with add_special = 1 and parse_special = 1. Writes it NUL-terminated into buf; *needed =
 * its length without the NUL (also when the buffer is too small: TESSERA_ERR_BUFFER_TOO_SMALL). buf may be
 * NULL when buf_size is 0. A template that fails on this conversation (e.g. its own raise_exception for roles
 * that do not alternate) is TESSERA_ERR_INVALID_ARGUMENT with its message, line and column. */
tessera_status tessera_chat_format(const tessera_model* model, const tessera_chat_message* msgs, size_t n_msgs,
                                   int add_generation_prompt, const char* template_override, char* buf,
                                   size_t buf_size, size_t* needed);

/* ---- stop strings: holds back streamed text that could begin a stop string ---- */
typedef struct tessera_stop_matcher tessera_stop_matcher;
/* stops: n_stops NUL-terminated strings (copied). */
tessera_status tessera_stop_matcher_create(const char* const* stops, int32_t n_stops, tessera_stop_matcher** out);
/* A matcher for the texts that end an assistant turn as chosen above (for a template: the end-of-turn
 * marker it writes after an assistant message, e.g. "<|im_end|>"). */
tessera_status tessera_stop_matcher_create_chat(const tessera_model* model, const char* template_override,
                                                tessera_stop_matcher** out);
void tessera_stop_matcher_free(tessera_stop_matcher* matcher);
/* Feeds complete UTF-8 text (len -1 = NUL-terminated); *out / *out_len = the text that may be shown now
 * (the matcher's storage, valid until its next call). Once a stop string completes, returns the text before
 * it and tessera_stop_matcher_stopped becomes 1; later pushes return "". */
tessera_status tessera_stop_matcher_push(tessera_stop_matcher* matcher, const char* text, int64_t len,
                                         const char** out, size_t* out_len);
/* At the end of generation: the text still held back ("" once stopped). */
tessera_status tessera_stop_matcher_flush(tessera_stop_matcher* matcher, const char** out, size_t* out_len);
int tessera_stop_matcher_stopped(const tessera_stop_matcher* matcher);

/* ---- answer channels: what a chat front end shows of a streamed answer ----
 * gpt-oss (the "harmony" chat format) writes its reasoning on an analysis channel and the answer on a final
 * channel; the filter passes the final channel's text and drops the others unless show_other_channels
 * (then each is opened with "[NAME] " and closed with a newline). For chat formats without channels it
 * passes everything through. Feed it the stop matcher's output. */
typedef struct tessera_channel_filter tessera_channel_filter;
tessera_status tessera_channel_filter_create(const tessera_model* model, const char* template_override,
                                             int show_other_channels, tessera_channel_filter** out);
void tessera_channel_filter_free(tessera_channel_filter* filter);
/* *out / *out_len: the visible text now available (the filter's storage, valid until its next call). */
tessera_status tessera_channel_filter_push(tessera_channel_filter* filter, const char* text, int64_t len,
                                           const char** out, size_t* out_len);
tessera_status tessera_channel_filter_flush(tessera_channel_filter* filter, const char** out, size_t* out_len);

/* ---- streaming detokenizer: token pieces to complete UTF-8 text ---- */
typedef struct tessera_detok_stream tessera_detok_stream;
tessera_status tessera_detok_stream_create(const tessera_model* model, tessera_detok_stream** out);
void tessera_detok_stream_free(tessera_detok_stream* stream);
/* Appends the token's piece; *out / *out_len = the complete UTF-8 characters now available (invalid bytes
 * become U+FFFD); a trailing partial character is held for the next push. Storage valid until the next call. */
tessera_status tessera_detok_stream_push(tessera_detok_stream* stream, tessera_token token, const char** out,
                                         size_t* out_len);
/* At the end: what the held bytes complete to (a partial character that cannot complete yet stays held). */
tessera_status tessera_detok_stream_flush(tessera_detok_stream* stream, const char** out, size_t* out_len);

/* The length in bytes (1 to 4) of the valid UTF-8 character that text[0..len) starts with, or 0 when it
 * starts with none: a stray or truncated byte, an overlong form, a surrogate, or a code point above U+10FFFF.
 * The check the detokenizer applies, for front ends that show raw token pieces. */
size_t tessera_utf8_char_len(const char* text, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_H */
