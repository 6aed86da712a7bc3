// Vocabulary loading, special-token splitting and detokenization. The tokenization algorithms live in
// tokenizer_spm.cpp, tokenizer_bpe.cpp and tokenizer_wpm.cpp.
#include "models/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "core/gguf.h"
#include "models/tokenizer_pre.h"
#include "models/unicode.h"

namespace tessera {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

namespace {

// Reads an optional special-token id; ids outside the vocabulary are ignored (as llama.cpp does, with the
// default kept), so a file with a stale pad id still loads.
TokenId read_special_id(const GGUFFile& f, const char* key, TokenId fallback, size_t n_vocab) {
    if (!f.has(key)) return fallback;
    int64_t id = f.get<int64_t>(key);
    if (id < 0 || uint64_t(id) >= n_vocab) return fallback;
    return TokenId(id);
}

// Texts of the end-of-turn tokens chat models use; matched against the vocabulary at load time.
const char* const kEndOfTurnTexts[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|EOT|>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",  // <｜end▁of▁sentence｜>
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GGUFFile& f) {
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    const std::string& path = f.path();
    if (!f.has("tokenizer.ggml.model")) throw Error(path + ": no tokenizer (key 'tokenizer.ggml.model' not found)");
    t->model_ = f.get<std::string>("tokenizer.ggml.model");
    if (t->model_ == "llama") {
        t->kind_ = VocabKind::SPM;
    } else if (t->model_ == "gpt2") {
        t->kind_ = VocabKind::BPE;
    } else if (t->model_ == "bert") {
        t->kind_ = VocabKind::WPM;
    } else {
        throw Error(path + ": tokenizer model '" + t->model_ +
                    "' (tokenizer.ggml.model) is not supported; tessera supports 'llama' (SentencePiece), "
                    "'gpt2' (byte-level BPE) and 'bert' (WordPiece)",
                    Status::Unsupported);
    }

    t->tokens_ = f.get_array<std::string>("tokenizer.ggml.tokens");
    const size_t n = t->tokens_.size();
    if (n == 0) throw Error(path + ": tokenizer.ggml.tokens is empty");
    if (n > size_t(INT32_MAX)) throw Error(path + ": tokenizer.ggml.tokens has too many entries");

    if (f.has("tokenizer.ggml.scores")) {
        t->scores_ = f.get_array<float>("tokenizer.ggml.scores");
        if (t->scores_.size() != n)
            throw Error(format("%s: tokenizer.ggml.scores has %zu entries but tokenizer.ggml.tokens has %zu",
                               path.c_str(), t->scores_.size(), n));
    } else {
        t->scores_.assign(n, 0.0f);
    }
    t->types_.assign(n, TokenType::Normal);
    if (f.has("tokenizer.ggml.token_type")) {
        auto types = f.get_array<int32_t>("tokenizer.ggml.token_type");
        if (types.size() != n)
            throw Error(format("%s: tokenizer.ggml.token_type has %zu entries but tokenizer.ggml.tokens has %zu",
                               path.c_str(), types.size(), n));
        for (size_t i = 0; i < n; ++i) {
            if (types[i] < 0 || types[i] > 6)
                throw Error(format("%s: tokenizer.ggml.token_type element %zu holds %d, not a token type (0..6)",
                                   path.c_str(), i, types[i]));
            t->types_[i] = TokenType(types[i]);
        }
    }
    // Later duplicates win, as in llama.cpp.
    t->index_.reserve(n);
    for (size_t i = 0; i < n; ++i) t->index_[t->tokens_[i]] = TokenId(i);

    if (t->kind_ == VocabKind::SPM) {
        t->bos_ = read_special_id(f, "tokenizer.ggml.bos_token_id", n > 1 ? 1 : -1, n);
        t->eos_ = read_special_id(f, "tokenizer.ggml.eos_token_id", n > 2 ? 2 : -1, n);
        t->unk_ = read_special_id(f, "tokenizer.ggml.unknown_token_id", 0, n);
        t->add_bos_ = true;
        t->add_space_prefix_ = true;
    } else if (t->kind_ == VocabKind::WPM) {
        // BERT frames a sequence as [CLS] ... [SEP]; llama.cpp's defaults are BERT's ids (101, 102, 100).
        auto fallback = [n](TokenId id) { return size_t(id) < n ? id : TokenId(-1); };
        TokenId cls = read_special_id(f, "tokenizer.ggml.cls_token_id", fallback(101), n);
        // The key is spelled "seperator" in llama.cpp's files.
        TokenId sep = read_special_id(f, "tokenizer.ggml.seperator_token_id", fallback(102), n);
        t->bos_ = read_special_id(f, "tokenizer.ggml.bos_token_id", cls, n);
        t->eos_ = read_special_id(f, "tokenizer.ggml.eos_token_id", sep, n);
        t->unk_ = read_special_id(f, "tokenizer.ggml.unknown_token_id", fallback(100), n);
        if (t->unk_ < 0)
            throw Error(path + ": a WordPiece vocabulary needs an unknown token (tokenizer.ggml.unknown_token_id)");
        t->add_bos_ = t->add_eos_ = true;
        for (const std::string& s : t->tokens_) t->max_token_len_ = std::max(t->max_token_len_, s.size());
    } else {
        t->bos_ = read_special_id(f, "tokenizer.ggml.bos_token_id", -1, n);
        t->eos_ = read_special_id(f, "tokenizer.ggml.eos_token_id", -1, n);
        t->unk_ = read_special_id(f, "tokenizer.ggml.unknown_token_id", -1, n);
        t->pre_ = f.get_or<std::string>("tokenizer.ggml.pre", "default");
        PreTokenizerSpec spec;
        try {
            spec = pre_tokenizer_spec(t->pre_);
        } catch (const Error& e) {
            throw Error(path + ": " + e.what(), e.status());
        }
        t->pre_split_ = std::make_unique<unicode::RegexSplitter>(spec.regexes);
        t->ignore_merges_ = spec.ignore_merges;
        t->add_bos_ = spec.ignore_merges;  // Llama 3 style vocabularies start with BOS unless the file says otherwise

        auto merges = f.get_array<std::string>("tokenizer.ggml.merges");
        t->merge_rank_.reserve(merges.size());
        for (size_t i = 0; i < merges.size(); ++i) {
            const std::string& m = merges[i];
            size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (sp == std::string::npos)
                throw Error(format("%s: tokenizer.ggml.merges element %zu is not two tokens separated by a space",
                                   path.c_str(), i));
            t->merge_rank_.emplace(m, int(i));  // first occurrence keeps the better rank
        }
    }
    if (t->pre_.empty()) t->pre_ = f.get_or<std::string>("tokenizer.ggml.pre", "default");
    t->eot_ = read_special_id(f, "tokenizer.ggml.eot_token_id", -1, n);
    t->pad_ = read_special_id(f, "tokenizer.ggml.padding_token_id", -1, n);
    t->add_bos_ = f.get_or<bool>("tokenizer.ggml.add_bos_token", t->add_bos_);
    t->add_eos_ = f.get_or<bool>("tokenizer.ggml.add_eos_token", t->add_eos_);
    if (t->kind_ == VocabKind::SPM)
        t->add_space_prefix_ = f.get_or<bool>("tokenizer.ggml.add_space_prefix", t->add_space_prefix_);
    t->chat_template_ = f.get_or<std::string>("tokenizer.chat_template", "");
    if (t->add_bos_ && t->bos_ < 0) t->add_bos_ = false;
    if (t->add_eos_ && t->eos_ < 0) t->add_eos_ = false;

    // Tokens matched as whole strings before the merge algorithms run, longest first so that a longer
    // token wins over a shorter one it contains.
    for (size_t i = 0; i < n; ++i) {
        TokenType ty = t->types_[i];
        if ((ty == TokenType::Control || ty == TokenType::UserDefined || ty == TokenType::Unknown) &&
            !t->tokens_[i].empty())
            t->special_.push_back(TokenId(i));
    }
    std::stable_sort(t->special_.begin(), t->special_.end(), [&](TokenId a, TokenId b) {
        return t->tokens_[a].size() > t->tokens_[b].size();
    });

    // Phi-3's added tokens swallow the whitespace after them (rstrip), except <unk>, <s> and <|endoftext|>.
    t->strip_.assign(n, 0);
    std::string name = f.get_or<std::string>("general.name", "");
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (TokenId id : t->special_) t->strip_[id] |= 2;
        if (TokenId id = t->find_token("</s>"); id >= 0) t->strip_[id] |= 2;
        for (const char* keep : {"<unk>", "<s>", "<|endoftext|>"})
            if (TokenId id = t->find_token(keep); id >= 0) t->strip_[id] &= uint8_t(~2);
    }

    auto add_eog = [&](TokenId id) {
        if (id >= 0 && std::find(t->eog_.begin(), t->eog_.end(), id) == t->eog_.end()) t->eog_.push_back(id);
    };
    add_eog(t->eos_);
    add_eog(t->eot_);
    for (const char* text : kEndOfTurnTexts) {
        TokenId id = t->find_token(text);
        if (id >= 0 && (t->types_[id] == TokenType::Control || t->types_[id] == TokenType::UserDefined))
            add_eog(id);
    }
    return t;
}

void Tokenizer::check_id(TokenId id) const {
    if (id < 0 || id >= n_vocab())
        throw Error(format("token id %d is out of range (vocabulary has %d tokens)", id, n_vocab()));
}

const std::string& Tokenizer::token_text(TokenId id) const {
    check_id(id);
    return tokens_[id];
}
TokenType Tokenizer::token_type(TokenId id) const {
    check_id(id);
    return types_[id];
}
float Tokenizer::token_score(TokenId id) const {
    check_id(id);
    return scores_[id];
}
TokenId Tokenizer::find_token(std::string_view text) const {
    auto it = index_.find(text);
    return it == index_.end() ? -1 : it->second;
}
bool Tokenizer::is_eog(TokenId id) const { return std::find(eog_.begin(), eog_.end(), id) != eog_.end(); }

// ---------------------------------------------------------------- tokenize

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({text, -1});
    for (TokenId id : special_) {
        // Without parse_special only USER_DEFINED tokens are matched (Hugging Face treats added
        // non-special tokens that way); CONTROL and UNKNOWN texts stay plain text.
        if (!parse_special && types_[id] != TokenType::UserDefined) continue;
        const std::string& st = tokens_[id];
        std::vector<Fragment> next;
        bool changed = false;
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            std::string_view rest = fr.text;
            size_t pos;
            auto is_ws = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
            while ((pos = rest.find(st)) != std::string_view::npos) {
                changed = true;
                std::string_view left = rest.substr(0, pos);
                if (strip_[id] & 1)
                    while (!left.empty() && is_ws(left.back())) left.remove_suffix(1);
                if (!left.empty()) next.push_back({left, -1});
                next.push_back({{}, id});
                rest = rest.substr(pos + st.size());
                if (strip_[id] & 2)
                    while (!rest.empty() && is_ws(rest.front())) rest.remove_prefix(1);
            }
            if (!rest.empty()) next.push_back({rest, -1});
        }
        if (changed) frags = std::move(next);
    }
    return frags;
}

std::vector<TokenId> Tokenizer::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<TokenId> out;
    if (add_special && add_bos_) out.push_back(bos_);
    std::vector<Fragment> frags = split_special(text, parse_special);
    bool prev_special = true;  // SPM: the first text fragment (and any after a special token) gets the space prefix
    for (const Fragment& fr : frags) {
        if (fr.token >= 0) {
            out.push_back(fr.token);
            prev_special = true;
            continue;
        }
        if (kind_ == VocabKind::SPM) {
            std::string s;
            if (add_space_prefix_ && prev_special) s = " ";
            s.append(fr.text);
            tokenize_spm(s, out);
        } else if (kind_ == VocabKind::WPM) {
            tokenize_wpm(fr.text, out);
        } else {
            tokenize_bpe(fr.text, out);
        }
        prev_special = false;
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
}

// ---------------------------------------------------------------- detokenize

std::string Tokenizer::token_to_piece(TokenId id, bool render_special) const {
    check_id(id);
    const std::string& text = tokens_[id];
    TokenType ty = types_[id];
    if (ty == TokenType::Control) return render_special ? text : std::string();
    if (kind_ == VocabKind::SPM || kind_ == VocabKind::WPM) {
        if (ty == TokenType::Byte) {
            // "<0xNN>"
            if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
                unsigned v = 0;
                for (int k = 3; k < 5; ++k) {
                    char c = text[k];
                    v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                  : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0);
                }
                return std::string(1, char(v));
            }
            return text;
        }
        if (ty == TokenType::Unknown) return "\xE2\x96\x85";  // ▅, as llama.cpp prints unknown pieces
        if (ty == TokenType::Unused) return std::string();
        // "▁" (U+2581) stands for a space.
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
                out += ' ';
                i += 3;
            } else {
                out += text[i++];
            }
        }
        return out;
    }
    // Byte-level BPE: every character of a normal token stands for one byte.
    if (ty != TokenType::Normal && ty != TokenType::Undefined) return ty == TokenType::Unused ? std::string() : text;
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len = unicode::valid_utf8_at(text, i);
        if (len == 0) {  // not UTF-8: keep the byte; the stream decoder turns it into U+FFFD if needed
            out += text[i++];
            continue;
        }
        uint32_t cp = 0;
        const auto* p = reinterpret_cast<const uint8_t*>(text.data() + i);
        if (len == 1) cp = p[0];
        else if (len == 2) cp = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        else if (len == 3) cp = ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        else cp = ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        int b = unicode::unicode_to_byte(cp);
        if (b >= 0) out += char(b);
        else out.append(text, i, len);  // a character outside the byte map stands for itself
        i += len;
    }
    return out;
}

std::string Tokenizer::detokenize(std::span<const TokenId> ids, bool render_special) const {
    std::string out;
    // WPM writes "▁" in front of every word, the first one included.
    bool strip_space = (kind_ == VocabKind::SPM && add_space_prefix_) || kind_ == VocabKind::WPM;
    for (TokenId id : ids) {
        std::string piece = token_to_piece(id, render_special);
        if (strip_space && !piece.empty()) {
            // The tokenizer put one space in front of the text; take it away again from the first piece.
            if (piece[0] == ' ') piece.erase(0, 1);
            strip_space = false;
        }
        out += piece;
    }
    return out;
}

// ---------------------------------------------------------------- streaming

namespace {

// True when s[i..] is the beginning of a valid UTF-8 sequence that the end of s cut short.
bool incomplete_prefix(std::string_view s, size_t i) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    uint8_t c = p[i];
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : (c & 0xF0) == 0xE0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    size_t have = s.size() - i;
    if (len == 0 || have >= len) return false;
    for (size_t k = 1; k < have; ++k) {
        uint8_t b = p[i + k];
        if ((b & 0xC0) != 0x80) return false;
        if (k == 1) {  // second-byte limits that rule out overlong forms, surrogates and > U+10FFFF
            if (c == 0xE0 && b < 0xA0) return false;
            if (c == 0xED && b > 0x9F) return false;
            if (c == 0xF0 && b < 0x90) return false;
            if (c == 0xF4 && b > 0x8F) return false;
        }
    }
    return true;
}

}  // namespace

std::string utf8_take_complete(std::string_view bytes, std::string* tail) {
    std::string out;
    out.reserve(bytes.size());
    tail->clear();
    for (size_t i = 0; i < bytes.size();) {
        size_t len = unicode::valid_utf8_at(bytes, i);
        if (len > 0) {
            out.append(bytes.data() + i, len);
            i += len;
        } else if (incomplete_prefix(bytes, i)) {
            tail->assign(bytes.substr(i));
            break;
        } else {
            out += "\xEF\xBF\xBD";
            i += 1;
        }
    }
    return out;
}

std::string StreamDecoder::push(TokenId id) { return push_bytes(tok_.token_to_piece(id, render_special_)); }

std::string StreamDecoder::push_bytes(std::string_view bytes) {
    pending_.append(bytes);
    std::string tail;
    std::string out = utf8_take_complete(pending_, &tail);
    pending_ = std::move(tail);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = unicode::sanitize_utf8(pending_);
    pending_.clear();
    return out;
}

}  // namespace tessera
