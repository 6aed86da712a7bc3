// libFuzzer target for the tokenizers: arbitrary bytes through every vocabulary kind the shared vocab files
// give (SPM, byte-level BPE with its pre-tokenizers, WordPiece). A crash, sanitizer report, an exception
// other than tessera::Error, or a broken promise below is a finding.
//
// Input: byte 0 picks the vocabulary, byte 1 the flags, the rest is the text (or, with flag 8, token ids).
// Promises checked:
//  - tokenize never throws on any bytes; every id it returns is inside the vocabulary;
//  - token_to_piece and detokenize of any in-range ids never throw;
//  - round trip: byte-level BPE and SPM give back valid UTF-8 text exactly (without special-token parsing,
//    when the vocabulary has no USER_DEFINED tokens, which may strip whitespace next to them), when the
//    vocabulary has a token for each of the text's bytes. Falcon's lacks 28 byte tokens (0x03, 0x04, ...):
//    such bytes are dropped, as llama.cpp's tokenizer drops them.
// Built and run by tests/fuzz/run.sh (`make fuzz FUZZ_TARGET=tokenizer`); the vocabularies come from
// $FUZZ_VOCAB_DIR (run.sh: ../shared/vocab).
#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "models/tokenizer.h"
#include "models/unicode.h"

using namespace tessera;

namespace {

bool valid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = unicode::valid_utf8_at(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

[[noreturn]] void broken(const std::string& what) {
    std::fprintf(stderr, "fuzz_tokenizer: promise broken: %s\n", what.c_str());
    std::abort();
}

struct Vocab {
    std::string name;
    std::unique_ptr<Tokenizer> tok;
    bool has_user_defined = false;
    bool byte_token[256] = {};  // the vocabulary can spell this byte on its own (byte-level BPE, SPM)
};

// Whether a lone byte has a token: byte-level BPE through its printable stand-in, SPM as <0xNN> or itself.
bool has_byte_token(const Tokenizer& tok, uint8_t b) {
    if (tok.kind() == VocabKind::SPM) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        return tok.find_token(name) >= 0 || tok.find_token(std::string(1, char(b))) >= 0;
    }
    return tok.find_token(unicode::byte_to_unicode(b)) >= 0;
}

std::vector<Vocab>& vocabs() {
    static std::vector<Vocab> list = [] {
        std::vector<Vocab> out;
        const char* dir = std::getenv("FUZZ_VOCAB_DIR");
        if (!dir) dir = "../shared/vocab";
        std::vector<std::string> names;
        if (DIR* d = opendir(dir)) {
            while (dirent* e = readdir(d)) {
                const std::string n = e->d_name;
                if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0) names.push_back(n);
            }
            closedir(d);
        }
        std::sort(names.begin(), names.end());
        for (const auto& n : names) {
            try {
                auto file = GGUFFile::open(std::string(dir) + "/" + n);
                Vocab v{n, Tokenizer::from_gguf(*file)};
                for (int32_t id = 0; id < v.tok->n_vocab(); ++id)
                    v.has_user_defined |= v.tok->token_type(id) == TokenType::UserDefined;
                for (int b = 0; b < 256; ++b) v.byte_token[b] = has_byte_token(*v.tok, uint8_t(b));
                out.push_back(std::move(v));
            } catch (const Error& e) {
                std::fprintf(stderr, "fuzz_tokenizer: skipping %s: %s\n", n.c_str(), e.what());
            }
        }
        if (out.empty()) {
            std::fprintf(stderr, "fuzz_tokenizer: no vocabulary in %s (set FUZZ_VOCAB_DIR)\n", dir);
            std::exit(1);
        }
        std::fprintf(stderr, "fuzz_tokenizer: %zu vocabularies from %s\n", out.size(), dir);
        return out;
    }();
    return list;
}

}  // namespace

// The vocabularies load before the first input: under ASan that takes seconds, which libFuzzer would
// otherwise count against the first input's time limit (a false "timeout" on a loaded machine).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)vocabs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    Vocab& v = vocabs()[data[0] % vocabs().size()];
    const Tokenizer& tok = *v.tok;
    const uint8_t flags = data[1];
    const bool add_special = flags & 1, parse_special = flags & 2, render_special = flags & 4;
    const std::string text(reinterpret_cast<const char*>(data + 2), size - 2);

    if (flags & 8) {  // the bytes as token ids: detokenizing any ids in range must work
        std::vector<TokenId> ids;
        for (size_t i = 0; i + 1 < text.size(); i += 2)
            ids.push_back(TokenId((uint8_t(text[i]) | uint8_t(text[i + 1]) << 8) % uint32_t(tok.n_vocab())));
        try {
            for (TokenId id : ids) (void)tok.token_to_piece(id, render_special);
            (void)tok.detokenize(ids, render_special);
        } catch (const Error& e) {
            broken(v.name + ": detokenize of in-range ids threw: " + e.what());
        }
        return 0;
    }

    std::vector<TokenId> ids;
    try {
        ids = tok.tokenize(text, add_special, parse_special);
    } catch (const Error& e) {
        broken(v.name + ": tokenize threw: " + e.what());
    }
    for (TokenId id : ids)
        if (id < 0 || id >= tok.n_vocab()) broken(v.name + ": id " + std::to_string(id) + " out of range");
    std::string back;
    try {
        back = tok.detokenize(ids, render_special);
    } catch (const Error& e) {
        broken(v.name + ": detokenize threw: " + e.what());
    }
    const bool lossless_kind = tok.kind() == VocabKind::SPM || tok.model_name() == "gpt2";
    const bool spellable = std::all_of(text.begin(), text.end(), [&](char c) { return v.byte_token[uint8_t(c)]; });
    // SPM writes spaces as U+2581 and reads every U+2581 back as a space: a literal one cannot survive.
    const bool spm_marker = tok.kind() == VocabKind::SPM && text.find("\xE2\x96\x81") != std::string::npos;
    if (lossless_kind && !add_special && !parse_special && !v.has_user_defined && spellable && !spm_marker && valid_utf8(text) &&
        back != text)
        broken(v.name + ": round trip changed the text (" + std::to_string(text.size()) + " bytes in, " +
               std::to_string(back.size()) + " out)");
    return 0;
}
