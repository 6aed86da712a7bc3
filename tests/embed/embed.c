/* A C program embedding libtessera through its installed header and static library:
 * loads a model, tokenizes a prompt, generates greedily and prints the text.
 * usage: embed MODEL [PROMPT] [N] [EXPECT]   (exit 1 if EXPECT is given and not in the output) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tessera.h>

static int fail(const char* what) {
    fprintf(stderr, "embed: %s: %s\n", what, tessera_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: embed MODEL [PROMPT] [N] [EXPECT]\n");
        return 2;
    }
    const char* prompt = argc > 2 ? argv[2] : "Once upon a time";
    const int n_gen = argc > 3 ? atoi(argv[3]) : 16;
    const char* expect = argc > 4 ? argv[4] : NULL;

    tessera_model* model = NULL;
    if (tessera_model_open(argv[1], NULL, &model) != TESSERA_OK) return fail("open");
    printf("tessera %s, model %s: %d layers, vocab %d\n", tessera_version(), tessera_model_arch(model),
           tessera_model_n_layer(model), tessera_model_n_vocab(model));

    tessera_session_params sp = tessera_session_default_params();
    sp.n_ctx = 256;
    sp.n_threads = 2;
    tessera_session* session = NULL;
    if (tessera_session_create(model, &sp, &session) != TESSERA_OK) return fail("session");

    tessera_token ids[256];
    int32_t n = 0;
    if (tessera_tokenize(model, prompt, -1, 1, 0, ids, 256, &n) != TESSERA_OK) return fail("tokenize");
    if (tessera_decode(session, ids, n) != TESSERA_OK) return fail("decode prompt");

    tessera_sampler_params gp = tessera_sampler_default_params();
    gp.temperature = 0.0f; /* greedy */
    tessera_sampler* sampler = NULL;
    if (tessera_sampler_create(model, &gp, &sampler) != TESSERA_OK) return fail("sampler");

    char text[4096] = "";
    size_t used = 0;
    for (int i = 0; i < n_gen; ++i) {
        tessera_token t;
        if (tessera_sample(sampler, session, &t) != TESSERA_OK) return fail("sample");
        char piece[64];
        size_t len = 0;
        if (tessera_token_to_piece(model, t, piece, sizeof piece, &len) != TESSERA_OK) return fail("piece");
        if (used + len < sizeof text) {
            memcpy(text + used, piece, len);
            used += len;
            text[used] = '\0';
        }
        if (tessera_decode(session, &t, 1) != TESSERA_OK) return fail("decode");
    }
    printf("%s%s\n", prompt, text);

    tessera_sampler_free(sampler);
    tessera_session_free(session);
    tessera_model_free(model);
    if (used == 0) {
        fprintf(stderr, "embed: nothing was generated\n");
        return 1;
    }
    if (expect && !strstr(text, expect)) {
        fprintf(stderr, "embed: expected '%s' in the output\n", expect);
        return 1;
    }
    return 0;
}
