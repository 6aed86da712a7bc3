// Tokenizer tests: llama.cpp's vocabulary test sets (expected ids from Hugging Face tokenizers) must match
// exactly; a hand-built vocabulary checks the SentencePiece rules without shared data; round trips and
// the streaming UTF-8 decoder.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "core/gguf.h"
#include "models/tokenizer.h"
#include "models/tokenizer_pre.h"
#include "models/unicode.h"
#include "tests/testing.h"

using namespace tessera;

namespace {

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct VocabCase {
    std::string input;
    std::vector<TokenId> ids;
};

// X.gguf.inp: strings each followed by "\n__ggml_vocab_test__\n"; X.gguf.out: one line of " id id ..." each.
std::vector<VocabCase> load_cases(const std::string& gguf_path) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::string inp = read_text(gguf_path + ".inp");
    std::vector<VocabCase> cases;
    size_t pos = 0;
    while (pos < inp.size()) {
        size_t end = inp.find(sep, pos);
        REQUIRE_MESSAGE(end != std::string::npos, "unterminated test string in " << gguf_path << ".inp");
        cases.push_back({inp.substr(pos, end - pos), {}});
        pos = end + sep.size();
    }
    std::ifstream out(gguf_path + ".out");
    std::string line;
    size_t i = 0;
    while (std::getline(out, line)) {
        REQUIRE(i < cases.size());
        std::istringstream ls(line);
        TokenId id;
        while (ls >> id) cases[i].ids.push_back(id);
        ++i;
    }
    REQUIRE_MESSAGE(i == cases.size(), gguf_path << ": " << i << " output lines for " << cases.size() << " inputs");
    return cases;
}

std::string ids_str(const std::vector<TokenId>& ids) {
    std::string s;
    for (TokenId id : ids) {
        s += ' ';
        s += std::to_string(id);
    }
    return s;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
    auto f = GGUFFile::open(path);
    return Tokenizer::from_gguf(*f);
}

const char* const kVocabs[] = {"llama-spm", "phi-3",  "deepseek-llm", "deepseek-coder", "falcon",
                               "gpt-2",     "starcoder", "refact", "mpt",          "bert-bge"};

// A small SentencePiece vocabulary with hand-chosen scores, written to a temporary GGUF file.
std::string write_tiny_spm(const std::string& name, bool add_space_prefix) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    std::vector<float> scores = {0, 0, 0};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        types.push_back(6);
        scores.push_back(0);
    }
    // ids 259.. : normal pieces. "▁ab" beats "ab" beats "▁a"; "bc" beats "ab" so "abc" -> "a" "bc".
    const std::pair<const char*, float> normal[] = {
        {"\xE2\x96\x81", -1}, {"a", -2}, {"b", -2}, {"c", -2}, {"ab", -5}, {"\xE2\x96\x81" "a", -6},
        {"\xE2\x96\x81" "ab", -3}, {"bc", -4}, {"<|user|>", 0},
    };
    for (auto [t, s] : normal) {
        tokens.push_back(t);
        types.push_back(std::string(t) == "<|user|>" ? 4 : 1);
        scores.push_back(s);
    }
    GGUFWriter w;
    w.set_str("general.architecture", "llama");
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_arr_str("tokenizer.ggml.tokens", tokens);
    w.set_arr_f32("tokenizer.ggml.scores", scores);
    w.set_arr_i32("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
    std::string path = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_" + name + ".gguf";
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("tokenizer: vocab test sets match Hugging Face ids exactly") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared (vocab test data) is not available");
        return;
    }
    for (const char* name : kVocabs) {
        std::string path = testing::shared_path(std::string("vocab/ggml-vocab-") + name + ".gguf");
        INFO("vocab " << std::string(name));
        auto tok = load_tokenizer(path);
        auto cases = load_cases(path);
        CHECK(cases.size() > 10);
        int failures = 0;
        for (const auto& c : cases) {
            auto got = tok->tokenize(c.input, /*add_special=*/false, /*parse_special=*/false);
            if (got != c.ids) ++failures;
            CHECK_MESSAGE(got == c.ids, std::string(name) << ": input '" << c.input << "'\n  want" << ids_str(c.ids)
                                             << "\n  got " << ids_str(got));
        }
        MESSAGE(std::string(name) << ": " << cases.size() - failures << "/" << cases.size() << " inputs match");
    }
}

TEST_CASE("tokenizer: round trips where tokenization is lossless") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    for (const char* name : kVocabs) {
        std::string path = testing::shared_path(std::string("vocab/ggml-vocab-") + name + ".gguf");
        INFO("vocab " << std::string(name));
        auto tok = load_tokenizer(path);
        for (const auto& c : load_cases(path)) {
            auto ids = tok->tokenize(c.input, false, false);
            if (tok->kind() == VocabKind::WPM) {
                // WordPiece loses case, accents and the kind of whitespace, so the text does not come back;
                // what does hold is that the decoded text tokenizes to the same ids (unless a word was unknown).
                if (std::find(ids.begin(), ids.end(), tok->unk()) == ids.end())
                    CHECK_MESSAGE(tok->tokenize(tok->detokenize(ids), false, false) == ids,
                                  name << ": '" << c.input << "' -> '" << tok->detokenize(ids) << "'");
                continue;
            }
            CHECK_MESSAGE(tok->detokenize(ids) == c.input, name << ": '" << c.input << "'");
            // Streaming, one token at a time, gives the same text (the leading-space rule aside).
            StreamDecoder dec(*tok);
            std::string streamed;
            for (TokenId id : ids) streamed += dec.push(id);
            streamed += dec.flush();
            std::string expect = c.input;
            if (tok->kind() == VocabKind::SPM && tok->add_space_prefix() && !ids.empty()) expect = " " + expect;
            CHECK(streamed == expect);
        }
    }
}

TEST_CASE("tokenizer: stories260K prompt with BOS and space prefix") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    auto tok = load_tokenizer(testing::shared_path("models/stories260K.gguf"));
    // From golden/generations.json ("prompt_tokens").
    CHECK(tok->tokenize("Once upon a time", true, false) == std::vector<TokenId>{1, 403, 407, 261, 378});
    CHECK(tok->tokenize("The little dog", true, false) == std::vector<TokenId>{1, 291, 376, 400, 428});
    CHECK(tok->detokenize(std::vector<TokenId>{1, 403, 407, 261, 378}) == "Once upon a time");
}

TEST_CASE("tokenizer: SentencePiece rules on a hand-built vocabulary") {
    std::string path = write_tiny_spm("spm", true);
    auto tok = load_tokenizer(path);
    const TokenId U = 259, A = 260, B = 261, C = 262, AB = 263, UA = 264, UAB = 265, BC = 266, USER = 267;
    CHECK(tok->kind() == VocabKind::SPM);
    CHECK(tok->n_vocab() == 268);
    // Space prefix, then "▁ab" (score -3) merges before anything else could use its parts.
    CHECK(tok->tokenize("ab", false, false) == std::vector<TokenId>{UAB});
    CHECK(tok->tokenize("ab", true, false) == std::vector<TokenId>{1, UAB});
    // "▁abc": "▁a"+"b"? no: pairs ▁a(-6), ab(-5), bc(-4): bc first -> ▁a(-6) wins over nothing else -> ▁a, bc.
    CHECK(tok->tokenize("abc", false, false) == std::vector<TokenId>{UA, BC});
    // No "▁b" entry: ▁ alone, then b.
    CHECK(tok->tokenize("b", false, false) == std::vector<TokenId>{U, B});
    // Characters without an entry fall back to byte tokens <0xNN> (id 3 + byte).
    CHECK(tok->tokenize("\xC3\xA9", false, false) == std::vector<TokenId>{U, 3 + 0xC3, 3 + 0xA9});
    CHECK(tok->tokenize("", true, false) == std::vector<TokenId>{1});
    CHECK(tok->tokenize("", false, false).empty());
    // User-defined tokens are matched whole even without parse_special; the text after one gets the prefix.
    CHECK(tok->tokenize("<|user|>ab", false, false) == std::vector<TokenId>{USER, UAB});
    // Control tokens only with parse_special.
    CHECK(tok->tokenize("</s>", false, true) == std::vector<TokenId>{2});
    auto plain = tok->tokenize("</s>", false, false);
    CHECK(std::find(plain.begin(), plain.end(), 2) == plain.end());
    // Pieces: ▁ -> space, byte tokens -> bytes, control -> "" unless rendered.
    CHECK(tok->token_to_piece(UAB) == " ab");
    CHECK(tok->token_to_piece(3 + 0x41) == "A");
    CHECK(tok->token_to_piece(2) == "");
    CHECK(tok->token_to_piece(2, true) == "</s>");
    CHECK(tok->detokenize(tok->tokenize(" abc b", true, false)) == " abc b");
    (void)A;
    (void)C;
    std::remove(path.c_str());

    std::string path2 = write_tiny_spm("nospace", false);
    auto tok2 = load_tokenizer(path2);
    CHECK(tok2->tokenize("ab", false, false) == std::vector<TokenId>{AB});
    CHECK(tok2->detokenize(std::vector<TokenId>{U, AB}) == " ab");
    std::remove(path2.c_str());
}

TEST_CASE("tokenizer: bad ids and files give errors that name the problem") {
    std::string path = write_tiny_spm("bad", true);
    auto tok = load_tokenizer(path);
    std::remove(path.c_str());
    for (TokenId bad : {-1, 268, 1000000}) {
        try {
            tok->token_to_piece(bad);
            FAIL("no error for id " << bad);
        } catch (const Error& e) {
            std::string msg = e.what();
            CHECK(msg.find(std::to_string(bad)) != std::string::npos);
            CHECK(msg.find("268") != std::string::npos);
        }
    }
    StreamDecoder dec(*tok);
    CHECK_THROWS_AS(dec.push(268), Error);

    GGUFWriter w;
    w.set_str("general.architecture", "llama");
    std::string p2 = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_none.gguf";
    w.write(p2);
    auto f = GGUFFile::open(p2);
    std::remove(p2.c_str());
    CHECK_THROWS_WITH_AS(Tokenizer::from_gguf(*f), doctest::Contains("tokenizer.ggml.model"), Error);

    GGUFWriter w3;
    w3.set_str("tokenizer.ggml.model", "llama");
    w3.set_arr_str("tokenizer.ggml.tokens", {"a", "b"});
    w3.set_arr_f32("tokenizer.ggml.scores", {0.0f});
    std::string p3 = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_scores.gguf";
    w3.write(p3);
    auto f3 = GGUFFile::open(p3);
    std::remove(p3.c_str());
    CHECK_THROWS_WITH_AS(Tokenizer::from_gguf(*f3), doctest::Contains("tokenizer.ggml.scores"), Error);

    GGUFWriter w4;
    w4.set_str("tokenizer.ggml.model", "gpt2");
    w4.set_str("tokenizer.ggml.pre", "no-such-pre");
    w4.set_arr_str("tokenizer.ggml.tokens", {"a", "b"});
    w4.set_arr_str("tokenizer.ggml.merges", {"a b"});
    std::string p4 = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_pre.gguf";
    w4.write(p4);
    auto f4 = GGUFFile::open(p4);
    std::remove(p4.c_str());
    CHECK_THROWS_WITH_AS(Tokenizer::from_gguf(*f4), doctest::Contains("no-such-pre"), Error);
}

TEST_CASE("streaming decoder: characters split across tokens come out whole") {
    const std::string text = "h\xC3\xA9llo \xF0\x9F\xA6\x99 \xE4\xB8\x96\xE7\x95\x8C!";  // "héllo 🦙 世界!"
    std::string tail;
    // Every split into two chunks.
    for (size_t cut = 0; cut <= text.size(); ++cut) {
        std::string pending, out;
        out += utf8_take_complete(text.substr(0, cut), &tail);
        std::string first = out;
        out += utf8_take_complete(tail + text.substr(cut), &tail);
        CHECK(tail.empty());
        CHECK(out == text);
        CHECK(unicode::sanitize_utf8(first) == first);  // never a partial character
    }
    // One byte at a time, through the decoder.
    std::string path = write_tiny_spm("stream", true);
    auto tok = load_tokenizer(path);
    std::remove(path.c_str());
    StreamDecoder dec(*tok);
    std::string out;
    for (char c : text) {
        std::string chunk = dec.push(3 + uint8_t(c));  // byte tokens
        CHECK(unicode::sanitize_utf8(chunk) == chunk);
        out += chunk;
    }
    out += dec.flush();
    CHECK(out == text);
    // The 4 bytes of 🦙: nothing until the last.
    CHECK(dec.push(3 + 0xF0) == "");
    CHECK(dec.push(3 + 0x9F) == "");
    CHECK(dec.push(3 + 0xA6) == "");
    CHECK(dec.push(3 + 0x99) == "\xF0\x9F\xA6\x99");
}

TEST_CASE("streaming decoder: invalid bytes become U+FFFD, never raw") {
    const std::string R = "\xEF\xBF\xBD";
    std::string tail;
    CHECK(utf8_take_complete("a\xFF" "b", &tail) == "a" + R + "b");
    CHECK(tail.empty());
    // A lead byte followed by a non-continuation: both the lead and the rest are judged.
    CHECK(utf8_take_complete("\xE2\x82z", &tail) == R + R + "z");
    // Overlong / surrogate / out of range starts are not held back.
    CHECK(utf8_take_complete("\xC0", &tail) == R);
    CHECK(utf8_take_complete("\xED\xA0", &tail) == R + R);
    CHECK(utf8_take_complete("\xF4\x90", &tail) == R + R);
    // A valid incomplete tail is held back.
    CHECK(utf8_take_complete("x\xE4\xB8", &tail) == "x");
    CHECK(tail == "\xE4\xB8");
}

TEST_CASE("unicode: GPT-2 byte map is a bijection onto printable characters") {
    std::set<std::string> seen;
    for (int b = 0; b < 256; ++b) {
        const std::string& s = unicode::byte_to_unicode(uint8_t(b));
        CHECK(seen.insert(s).second);
        // decode the single code point and map back
        uint32_t cp = s.size() == 1 ? uint8_t(s[0]) : ((uint8_t(s[0]) & 0x1F) << 6) | (uint8_t(s[1]) & 0x3F);
        CHECK(unicode::unicode_to_byte(cp) == b);
    }
    CHECK(unicode::byte_to_unicode(' ') == "\xC4\xA0");   // 'Ġ' (U+0120)
    CHECK(unicode::byte_to_unicode('\n') == "\xC4\x8A");  // 'Ċ' (U+010A)
    CHECK(unicode::byte_to_unicode('A') == "A");
}

TEST_CASE("unicode: regex splitter keeps unmatched text and applies patterns in turn") {
    unicode::RegexSplitter gpt2({R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))"});
    auto parts = gpt2.split("Hello world's   123!!\n");
    CHECK(parts == std::vector<std::string>{"Hello", " world", "'s", "  ", " 123", "!!", "\n"});
    unicode::RegexSplitter two({R"(\p{N})", R"( ?\p{L}+)"});
    CHECK(two.split("ab12 cd") == std::vector<std::string>{"ab", "1", "2", " cd"});
    // `$` is the end of the piece only (not before a final newline).
    unicode::RegexSplitter dollar({R"(\s+$)"});
    CHECK(dollar.split("a \n") == std::vector<std::string>{"a", " \n"});
    CHECK_THROWS_AS(unicode::RegexSplitter({"(unclosed"}), Error);
}

TEST_CASE("tessera tokenize: ids and pieces, vocab-only files") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    // TESSERA_CLI is defined for each test file (testing::cli_path() in the shared helper library is not).
    const std::string cli = TESSERA_CLI;
    const std::string stories = testing::shared_path("models/stories260K.gguf");
    std::string out;
    REQUIRE(testing::run_command(cli + " tokenize -m " + stories + " -p 'Once upon a time' --ids", &out) == 0);
    CHECK(out == "1 403 407 261 378\n");  // golden/generations.json prompt_tokens
    out.clear();
    REQUIRE(testing::run_command(cli + " tokenize -m " + stories + " -p 'Once upon a time' --ids --no-bos", &out) == 0);
    CHECK(out == "403 407 261 378\n");
    out.clear();
    REQUIRE(testing::run_command(cli + " tokenize -m " + stories + " -p 'Once upon'", &out) == 0);
    CHECK(out == "1\t'<s>'\n403\t' Once'\n407\t' upon'\n");
    // A vocab-only file: the first test input of the gpt-2 set, written to a file and read with -f.
    const std::string gpt2 = testing::shared_path("vocab/ggml-vocab-gpt-2.gguf");
    auto cases = load_cases(gpt2);
    const std::string in = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + ".txt";
    {
        std::ofstream f(in, std::ios::binary);
        f << cases[0].input;
    }
    out.clear();
    REQUIRE(testing::run_command(cli + " tokenize -m " + gpt2 + " -f " + in + " --ids --no-bos", &out) == 0);
    std::remove(in.c_str());
    std::string want;
    for (size_t i = 0; i < cases[0].ids.size(); ++i) {
        if (i) want += ' ';
        want += std::to_string(cases[0].ids[i]);
    }
    CHECK(out == want + "\n");
    // A WordPiece vocabulary: special tokens frame the ids as [CLS] ... [SEP] (101, 102 in this file's
    // tokenizer.ggml.cls_token_id / seperator_token_id); the words' ids are the set's for "Hello, world!".
    out.clear();
    const std::string bert = testing::shared_path("vocab/ggml-vocab-bert-bge.gguf");
    REQUIRE(testing::run_command(cli + " tokenize -m " + bert + " -p 'Hello, world!' --ids", &out) == 0);
    CHECK(out == "101 7592 1010 2088 999 102\n");
    // Usage errors exit 2; a missing file is an error (exit 1) that names it.
    CHECK(testing::run_command(cli + " tokenize -m " + stories) == 2);
    out.clear();
    CHECK(testing::run_command(cli + " tokenize -m /nonexistent/x.gguf -p hi", &out) == 1);
    CHECK(out.find("/nonexistent/x.gguf") != std::string::npos);
}

TEST_CASE("pre-tokenizers: splits worked out by hand from the regex definitions") {
    auto split = [](const char* pre, const std::string& text) {
        unicode::RegexSplitter s(pre_tokenizer_spec(pre).regexes);
        return s.split(text);
    };
    using V = std::vector<std::string>;
    // Llama 3: contractions alone, digits in threes, a space before digits stands alone, newlines keep
    // the spaces before them.
    CHECK(split("llama-bpe", "Hello world's 12345  \n\n") == V{"Hello", " world", "'s", " ", "123", "45", "  \n\n"});
    CHECK(pre_tokenizer_spec("llama-bpe").ignore_merges);
    // Qwen2: as Llama 3 but one digit per piece.
    CHECK(split("qwen2", "abc 2024") == V{"abc", " ", "2", "0", "2", "4"});
    // DeepSeek V3: digits (up to three) are split off first, then punctuation runs and letters.
    CHECK(split("deepseek-v3", "Hello, 1234") == V{"Hello", ",", " ", "123", "4"});
    // GPT-4o / o200k (gpt-oss): words split where lower case turns upper, contractions in any case stay with
    // their word, digits in threes, a punctuation run takes the newlines and slashes after it.
    CHECK(split("gpt-4o", "HelloWorld DON'T 12345 foo/\n\nbar") ==
          V{"Hello", "World", " DON'T", " ", "123", "45", " foo", "/\n\n", "bar"});
    CHECK_FALSE(pre_tokenizer_spec("gpt-4o").ignore_merges);
    // GPT-2: case-sensitive contractions ("'S" is not one).
    CHECK(split("gpt-2", "it'S") == V{"it", "'", "S"});
    CHECK_THROWS_WITH_AS(pre_tokenizer_spec("nonsense"), doctest::Contains("nonsense"), Error);
}

namespace {

// A byte-level BPE vocabulary with hand-picked merges. "Ġ" (U+0120) is the byte-level space.
std::string write_tiny_bpe(const std::string& name, const std::string& pre) {
    const std::string G = "\xC4\xA0";
    std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc", G, G + "a", G + "ab", "<|end|>"};
    std::vector<int32_t> types = {1, 1, 1, 1, 1, 1, 1, 1, 1, 3};
    GGUFWriter w;
    w.set_str("tokenizer.ggml.model", "gpt2");
    w.set_str("tokenizer.ggml.pre", pre);
    w.set_arr_str("tokenizer.ggml.tokens", tokens);
    w.set_arr_i32("tokenizer.ggml.token_type", types);
    // "b c" outranks "a b"; there is no merge that makes "Ġab".
    w.set_arr_str("tokenizer.ggml.merges", {"b c", "a b", "a bc", G + " a"});
    w.set_u32("tokenizer.ggml.eos_token_id", 9);
    std::string path = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_" + name + ".gguf";
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("byte-level BPE: merge ranks, ignore_merges, special tokens, pieces") {
    std::string p = write_tiny_bpe("gpt2", "gpt-2");
    auto tok = load_tokenizer(p);
    std::remove(p.c_str());
    CHECK(tok->kind() == VocabKind::BPE);
    // "abc": b+c (rank 0) first, then a+bc (rank 2).
    CHECK(tok->tokenize("abc", false, false) == std::vector<TokenId>{5});
    // " ab": a+b (rank 1) beats Ġ+a (rank 3); "Ġ ab" is no merge.
    CHECK(tok->tokenize(" ab", false, false) == std::vector<TokenId>{6, 3});
    // Control text only with parse_special; BPE adds no BOS unless the file says so.
    CHECK(tok->tokenize("a<|end|>", true, true) == std::vector<TokenId>{0, 9});
    CHECK(!tok->add_bos());
    CHECK(tok->is_eog(9));
    CHECK(tok->token_to_piece(8) == " ab");
    CHECK(tok->token_to_piece(9) == "");
    CHECK(tok->token_to_piece(9, true) == "<|end|>");
    CHECK(tok->detokenize(tok->tokenize(" ab abc", false, false)) == " ab abc");

    // Llama 3 style: a whole pre-token that is a vocabulary entry is taken as is, merges or not.
    std::string p3 = write_tiny_bpe("llama3", "llama-bpe");
    auto tok3 = load_tokenizer(p3);
    std::remove(p3.c_str());
    CHECK(tok3->tokenize(" ab", false, false) == std::vector<TokenId>{8});
}

namespace {

// A WordPiece vocabulary as llama.cpp converts BERT's: word-initial pieces start with "▁" (U+2581),
// continuation pieces ("##x" in BERT) are plain.
std::string write_tiny_wpm(const std::string& name, bool with_unk_key) {
    const std::string U = "\xE2\x96\x81";
    std::vector<std::string> tokens = {
        "[PAD]", "[UNK]", "[CLS]", "[SEP]",                                        // 0..3
        U + "hello", U + "he", "llo", U + ",", U + "!", U + "cafe", U + "ab", "c",  // 4..11
        U + "a", "b", U + "\xE4\xB8\xAD", U + "x",                               // 12..15: "▁中"
        U + "\xE1\x84\x92", "\xE1\x85\xA1", "\xE1\x86\xAB",                   // 16..18: "▁ᄒ", "ᅡ", "ᆫ"
        U + "\xCF\x89", U + "$", "a",                                             // 19..21: "▁ω"
    };
    std::vector<int32_t> types(tokens.size(), 1);
    for (int i = 0; i < 4; ++i) types[i] = 3;
    GGUFWriter w;
    w.set_str("tokenizer.ggml.model", "bert");
    w.set_str("tokenizer.ggml.pre", "bert-bge");
    w.set_arr_str("tokenizer.ggml.tokens", tokens);
    w.set_arr_i32("tokenizer.ggml.token_type", types);
    if (with_unk_key) w.set_u32("tokenizer.ggml.unknown_token_id", 1);
    w.set_u32("tokenizer.ggml.cls_token_id", 2);
    w.set_u32("tokenizer.ggml.seperator_token_id", 3);
    std::string path = "/tmp/tessera_test_tok_" + std::to_string(getpid()) + "_" + name + ".gguf";
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("WordPiece: BERT's normalization, splitting and longest-match rules on a hand-built vocabulary") {
    std::string p = write_tiny_wpm("wpm", true);
    auto tok = load_tokenizer(p);
    std::remove(p.c_str());
    using V = std::vector<TokenId>;
    auto ids = [&](const std::string& s) { return tok->tokenize(s, false, false); };
    CHECK(tok->kind() == VocabKind::WPM);
    CHECK(tok->unk() == 1);
    // Lowercased; punctuation and ASCII symbols are words of their own.
    CHECK(ids("HELLO, hello!") == V{4, 7, 4, 8});
    CHECK(ids("x$x") == V{15, 20, 15});
    // Longest piece first ("▁hello", not "▁he" + "llo"); continuation pieces have no "▁".
    CHECK(ids("hello") == V{4});
    CHECK(ids("abc") == V{10, 11});
    // A word with a position nothing matches is one unknown token, not its matched part plus one.
    CHECK(ids("hellox abc") == V{1, 10, 11});
    // Accents go: precomposed (NFD) or combining; U+2126 OHM SIGN decomposes to capital omega, then lowercases.
    CHECK(ids("Caf\xC3\xA9") == V{9});
    CHECK(ids("Cafe\xCC\x81") == V{9});
    CHECK(ids("\xE2\x84\xA6") == V{19});
    // Hangul syllables decompose into jamo: "한" -> "ᄒ" "ᅡ" "ᆫ".
    CHECK(ids("\xED\x95\x9C") == V{16, 17, 18});
    // CJK ideographs stand alone.
    CHECK(ids("x\xE4\xB8\xADx") == V{15, 14, 15});
    // Control and format characters are removed before words are split (so \v joins, as in Hugging Face);
    // category Z spaces (no-break space) and \t \n \r split. Invalid UTF-8 is dropped.
    CHECK(ids("a\xE2\x80\x8D" "b") == V{10});  // U+200D ZERO WIDTH JOINER
    CHECK(ids("a\vb") == V{10});
    CHECK(ids("ab\xC2\xA0" "ab\tab") == V{10, 10, 10});
    CHECK(ids("ab\xFF" "c") == V{10, 11});
    // Private-use characters go too; unassigned code points (U+0378) stay and make the word unknown.
    CHECK(ids("a\xEE\x80\x80" "b") == V{10});
    CHECK(ids("a\xCD\xB8" "b") == V{1});
    // A "▁" typed in the text is a character: mid-word it does not start a new word-initial piece.
    CHECK(ids("ab\xE2\x96\x81" "ab") == V{1});
    CHECK(ids("").empty());
    CHECK(ids(" \t\n\r\xE3\x80\x80").empty());  // ends with U+3000 IDEOGRAPHIC SPACE
    // Words of more than 100 characters are unknown (BERT's max_input_chars_per_word).
    V a100{12};
    a100.insert(a100.end(), 99, 21);
    CHECK(ids(std::string(100, 'a')) == a100);
    CHECK(ids(std::string(101, 'a')) == V{1});
    // Special tokens: [CLS] ... [SEP] with add_special; their text only with parse_special.
    CHECK(tok->tokenize("hello", true, false) == V{2, 4, 3});
    CHECK(tok->tokenize("[CLS]hello", false, true) == V{2, 4});
    CHECK(tok->tokenize("[CLS]", false, false) == V{1, 1, 1});  // "[", "cls", "]" are not in this vocabulary
    // Pieces: a word-initial "▁" is a space, which detokenize drops for the first word.
    CHECK(tok->token_to_piece(4) == " hello");
    CHECK(tok->token_to_piece(6) == "llo");
    CHECK(tok->token_to_piece(2) == "");
    CHECK(tok->detokenize(V{4, 7, 4, 8}) == "hello , hello !");
    CHECK(tok->detokenize(V{5, 6, 10, 11}) == "hello abc");

    // No unknown token: an error naming the key, at load time.
    std::string p2 = write_tiny_wpm("wpm_nounk", false);
    auto f2 = GGUFFile::open(p2);
    std::remove(p2.c_str());
    CHECK_THROWS_WITH_AS(Tokenizer::from_gguf(*f2), doctest::Contains("unknown_token_id"), Error);
}

TEST_CASE("tokenizer: random bytes never break tokenize/detokenize") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    std::mt19937 rng(1234);
    for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "falcon"}) {
        INFO("vocab " << std::string(name));
        auto tok = load_tokenizer(testing::shared_path(std::string("vocab/ggml-vocab-") + name + ".gguf"));
        for (int iter = 0; iter < 200; ++iter) {
            std::string s(rng() % 40, '\0');
            // Mostly ASCII with some high bytes, so both valid and broken UTF-8 turn up.
            for (char& c : s) c = char(rng() % 4 == 0 ? 0x80 + rng() % 128 : 0x20 + rng() % 95);
            std::vector<TokenId> ids;
            REQUIRE_NOTHROW(ids = tok->tokenize(s, false, false));
            for (TokenId id : ids) REQUIRE((id >= 0 && id < tok->n_vocab()));
            // Byte-level BPE sees invalid bytes as U+FFFD; SentencePiece keeps them via byte tokens.
            const std::string want = tok->kind() == VocabKind::BPE ? unicode::sanitize_utf8(s) : s;
            CHECK(tok->detokenize(ids) == want);
        }
    }
}

TEST_CASE("tokenizer: Phi-3's special tokens swallow the whitespace after them") {
    if (!testing::shared_available()) {
        MESSAGE("skipped: ../shared is not available");
        return;
    }
    auto tok = load_tokenizer(testing::shared_path("vocab/ggml-vocab-phi-3.gguf"));
    const TokenId user = tok->find_token("<|user|>"), end = tok->find_token("<|end|>"),
                  assistant = tok->find_token("<|assistant|>");
    REQUIRE(user >= 0);
    REQUIRE(end >= 0);
    REQUIRE(assistant >= 0);
    // The newline after each marker is dropped; "Hi" is then text after a special token (space prefix).
    std::vector<TokenId> want = {user};
    for (TokenId id : tok->tokenize("Hi", false, false)) want.push_back(id);
    want.push_back(end);
    want.push_back(assistant);
    CHECK(tok->tokenize("<|user|>\nHi<|end|>\n<|assistant|>\n", false, true) == want);
    // <s> keeps what follows.
    auto with_bos_text = tok->tokenize("<s>\nx", false, true);
    REQUIRE(with_bos_text.size() >= 2);
    CHECK(with_bos_text[0] == 1);
    CHECK(with_bos_text.size() > tok->tokenize("x", false, false).size());
}
