// SentencePiece-style tokenization ("llama" vocabularies): start from single characters and repeatedly merge
// the adjacent pair whose concatenation is the best-scored vocabulary entry; leftovers fall back to byte tokens.
#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "models/tokenizer.h"
#include "models/unicode.h"

namespace tessera {

namespace {

struct Symbol {
    size_t start;  // byte offset in the escaped text
    size_t n;      // byte length; 0 once merged into its left neighbour
    int prev, next;
};

struct Bigram {
    int left, right;
    float score;
    size_t size;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

TokenId Tokenizer::spm_byte_token(uint8_t byte) const {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    TokenId id = find_token(name);
    if (id >= 0) return id;
    id = find_token(std::string_view(reinterpret_cast<const char*>(&byte), 1));
    if (id >= 0) return id;
    if (unk_ >= 0) return unk_;
    throw Error(format("cannot encode byte 0x%02X: the vocabulary has no byte token for it and no unknown token",
                       byte));
}

void Tokenizer::tokenize_spm(std::string_view raw, std::vector<TokenId>& out) const {
    // Spaces are written as "▁" (U+2581) in the vocabulary.
    std::string text;
    text.reserve(raw.size() + raw.size() / 4);
    for (char c : raw) {
        if (c == ' ') text += "\xE2\x96\x81";
        else text += c;
    }
    if (text.empty()) return;

    std::vector<Symbol> sym;
    for (size_t off = 0; off < text.size();) {
        // One symbol per character; a byte that does not start valid UTF-8 is a symbol of its own (so it
        // cannot swallow the "▁" after it and come back out as a different space).
        size_t len = std::max<size_t>(unicode::valid_utf8_at(text, off), 1);
        int idx = int(sym.size());
        sym.push_back({off, len, idx - 1, off + len == text.size() ? -1 : idx + 1});
        off += len;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        std::string_view merged(text.data() + sym[left].start, sym[left].n + sym[right].n);
        auto it = index_.find(merged);
        if (it == index_.end()) return;
        TokenType ty = types_[it->second];
        // Control and unknown entries (<s>, <unk>) are never the result of a merge.
        if (ty == TokenType::Control || ty == TokenType::Unknown) return;
        queue.push({left, right, scores_[it->second], merged.size()});
    };
    for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        Bigram b = queue.top();
        queue.pop();
        Symbol& l = sym[b.left];
        Symbol& r = sym[b.right];
        // Stale entry: one side was merged elsewhere since it was queued.
        if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }

    for (int i = 0; i != -1 && !sym.empty(); i = sym[i].next) {
        const Symbol& s = sym[i];
        std::string_view piece(text.data() + s.start, s.n);
        TokenId id = find_token(piece);
        if (id >= 0) {
            out.push_back(id);
        } else {
            // A character with no vocabulary entry: its UTF-8 bytes as byte tokens.
            for (char c : piece) out.push_back(spm_byte_token(uint8_t(c)));
        }
    }
}

}  // namespace tessera
