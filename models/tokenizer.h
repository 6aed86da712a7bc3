// Tokenizers built from a GGUF file's vocabulary (tokenizer.ggml.*), matching llama.cpp's results:
//  - "llama": SentencePiece-style BPE: the pair whose merged text is the highest-scored token merges first,
//    "▁" stands for a space, an optional leading space (add_space_prefix), byte fallback to <0xNN>.
//  - "gpt2": byte-level BPE: the text is split by the pre-tokenizer regexes named by tokenizer.ggml.pre, each
//    piece's bytes are mapped to printable characters, and ranked merges (tokenizer.ggml.merges) apply.
//  - "bert": WordPiece: BERT's normalization (lowercase, accents stripped), words split at whitespace and
//    punctuation, then greedy longest-match pieces ("▁" marks a word-initial piece); see tokenizer_wpm.cpp.
// Special tokens (CONTROL) are recognized in input text only when asked (parse_special); USER_DEFINED
// tokens are always matched as whole strings first (as Hugging Face's added tokens are).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera {

class GGUFFile;
namespace unicode {
class RegexSplitter;
}

using TokenId = int32_t;

// Hash for string-keyed maps that can be searched with a string_view without building a std::string.
struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
};

enum class VocabKind { SPM, BPE, WPM };

class Tokenizer {
public:
    // Reads tokenizer.ggml.* from the file (vocab-only files work); throws tessera::Error naming the file
    // and the key when something is missing or inconsistent.
    static std::unique_ptr<Tokenizer> from_gguf(const GGUFFile& file);
    ~Tokenizer();

    // add_special: prepend BOS / append EOS as the file's add_bos_token / add_eos_token say.
    // parse_special: recognize CONTROL token texts (e.g. "<|eot_id|>") in `text`.
    std::vector<TokenId> tokenize(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token stands for: "▁" -> " " (SPM, WPM), byte tokens -> their byte, byte-level BPE
    // characters -> their bytes. CONTROL tokens give "" unless render_special. May be part of a UTF-8 sequence.
    std::string token_to_piece(TokenId id, bool render_special = false) const;
    // Concatenated pieces; for SPM with add_space_prefix, the space the tokenizer added in front is removed
    // (so detokenize(tokenize(s)) == s wherever the tokenization is lossless). WPM: the first word's "▁"
    // gives no space either ("Hello, world!" -> "hello , world !").
    std::string detokenize(std::span<const TokenId> ids, bool render_special = false) const;

    // ---- vocabulary ----
    int32_t n_vocab() const { return int32_t(tokens_.size()); }
    VocabKind kind() const { return kind_; }
    const std::string& model_name() const { return model_; }  // tokenizer.ggml.model
    const std::string& pre_name() const { return pre_; }      // tokenizer.ggml.pre ("default" when absent)
    const std::string& token_text(TokenId id) const;          // raw vocabulary text; throws on a bad id
    TokenType token_type(TokenId id) const;
    float token_score(TokenId id) const;
    TokenId find_token(std::string_view text) const;  // -1 when absent

    TokenId bos() const { return bos_; }  // -1 when the file has none; WPM: [CLS] (and eos(): [SEP])
    TokenId eos() const { return eos_; }
    TokenId eot() const { return eot_; }
    TokenId unk() const { return unk_; }
    TokenId pad() const { return pad_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }
    bool add_space_prefix() const { return add_space_prefix_; }
    // End of generation: EOS, EOT, or one of the end-of-turn tokens chat models use (<|im_end|>, <|end|>,
    // <end_of_turn>, <|eot_id|>, <|EOT|>, <｜end▁of▁sentence｜>, ...).
    bool is_eog(TokenId id) const;
    const std::vector<TokenId>& eog_tokens() const { return eog_; }
    // tokenizer.chat_template, or "" when absent.
    const std::string& chat_template() const { return chat_template_; }

    // Throws tessera::Error "token id N is out of range (vocabulary has M tokens)" for a bad id.
    void check_id(TokenId id) const;

private:
    Tokenizer();
    struct Fragment {
        std::string_view text;  // raw text when token < 0
        TokenId token = -1;
    };
    std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
    void tokenize_spm(std::string_view text, std::vector<TokenId>& out) const;
    void tokenize_bpe(std::string_view text, std::vector<TokenId>& out) const;
    void bpe_word(const std::string& word, std::vector<TokenId>& out) const;
    void tokenize_wpm(std::string_view text, std::vector<TokenId>& out) const;
    void wpm_word(const std::string& word, size_t n_chars, std::vector<TokenId>& out) const;
    TokenId spm_byte_token(uint8_t byte) const;
    int bpe_rank(std::string_view left, std::string_view right) const;

    VocabKind kind_ = VocabKind::SPM;
    std::string model_, pre_, chat_template_;
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<TokenType> types_;
    std::unordered_map<std::string, TokenId, TextHash, std::equal_to<>> index_;
    std::unordered_map<std::string, int, TextHash, std::equal_to<>> merge_rank_;  // key: "left right"
    std::vector<TokenId> special_;  // CONTROL / USER_DEFINED / UNKNOWN ids, longest text first
    // Whitespace next to a matched special token that is dropped (Hugging Face's lstrip / rstrip on added
    // tokens). GGUF has no key for it; like llama.cpp, tessera sets it by model name (Phi-3).
    std::vector<uint8_t> strip_;  // bit 0: lstrip, bit 1: rstrip
    std::vector<TokenId> eog_;
    std::unique_ptr<unicode::RegexSplitter> pre_split_;
    bool ignore_merges_ = false;  // Llama 3: a whole pre-token that is in the vocab is taken as is
    size_t max_token_len_ = 0;    // WPM: longest token text in bytes (bounds the longest-match search)
    TokenId bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1, pad_ = -1;
    bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
};

// Turns a stream of token ids into printable UTF-8 text: bytes of a character split across tokens are held
// back until complete, and bytes that can never form valid UTF-8 come out as U+FFFD, never raw.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok, bool render_special = false)
        : tok_(tok), render_special_(render_special) {}
    // Text that is complete after this token (possibly empty).
    std::string push(TokenId id);
    // Appends raw bytes (for tests and callers that already have piece text).
    std::string push_bytes(std::string_view bytes);
    // Whatever is still held back, with an incomplete tail as U+FFFD. Resets the decoder.
    std::string flush();
    void reset() { pending_.clear(); }

private:
    const Tokenizer& tok_;
    bool render_special_;
    std::string pending_;
};

// Splits `bytes` into the longest prefix that is complete, valid UTF-8 (invalid bytes replaced by U+FFFD) and
// keeps in *tail a trailing incomplete sequence that could still become valid.
std::string utf8_take_complete(std::string_view bytes, std::string* tail);

}  // namespace tessera
