// Byte-level BPE ("gpt2" vocabularies): pre-tokenize with the model's regexes, map each piece's bytes to
// GPT-2's printable characters, then apply the ranked merges (lowest rank first) within each piece.
#include <queue>

#include "models/tokenizer.h"
#include "models/unicode.h"

namespace tessera {

namespace {

struct Symbol {
    size_t start, n;
    int prev, next;
};

struct Bigram {
    int left, right;
    int rank;
    size_t size;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

int Tokenizer::bpe_rank(std::string_view left, std::string_view right) const {
    std::string key;
    key.reserve(left.size() + right.size() + 1);
    key.append(left);
    key += ' ';
    key.append(right);
    auto it = merge_rank_.find(key);
    return it == merge_rank_.end() ? -1 : it->second;
}

void Tokenizer::tokenize_bpe(std::string_view text, std::vector<TokenId>& out) const {
    // The regexes need valid UTF-8; invalid bytes become U+FFFD (as llama.cpp does).
    std::string clean = unicode::sanitize_utf8(text);
    for (const std::string& piece : pre_split_->split(clean)) bpe_word(unicode::bytes_to_unicode_text(piece), out);
}

void Tokenizer::bpe_word(const std::string& word, std::vector<TokenId>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        TokenId id = find_token(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    std::vector<Symbol> sym;
    for (size_t off = 0; off < word.size();) {
        size_t len = std::min<size_t>(unicode::utf8_seq_len(uint8_t(word[off])), word.size() - off);
        int idx = int(sym.size());
        sym.push_back({off, len, idx - 1, off + len == word.size() ? -1 : idx + 1});
        off += len;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        int rank = bpe_rank(std::string_view(word).substr(sym[left].start, sym[left].n),
                            std::string_view(word).substr(sym[right].start, sym[right].n));
        if (rank < 0) return;
        queue.push({left, right, rank, sym[left].n + sym[right].n});
    };
    for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        Bigram b = queue.top();
        queue.pop();
        Symbol& l = sym[b.left];
        Symbol& r = sym[b.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }
    for (int i = 0; i != -1; i = sym[i].next) {
        std::string_view piece(word.data() + sym[i].start, sym[i].n);
        TokenId id = find_token(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        // No entry for the merged piece: single bytes that are entries are kept, the rest dropped (llama.cpp).
        for (char c : piece) {
            TokenId b = find_token(std::string_view(&c, 1));
            if (b >= 0) out.push_back(b);
        }
    }
}

}  // namespace tessera
