/* tests/unit/test-wk-embed.c - the memory tools' embeddings on the node (worker/embed.h): the
 * mock's local embedding (deterministic, length 1, shared words score high) and the OpenAI
 * embeddings wire (the request body, the reply's vector, malformed replies and API errors).
 * The HTTP path itself runs end to end in tests/e2e/test_memory.py against tests/fake_llm.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/embed.h"
#include "worker/model_wire.h"

static float cosine(const float *a, const float *b, uint32_t n)
{
    float s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void test_mock(void **state)
{
    (void)state;
    enum { D = WK_EMBED_MOCK_DIMS };
    static float a[D], a2[D], b[D], c[D], z[D];
    wk_embed_mock("Apples and pears are sweet", a, D);
    wk_embed_mock("apples, and PEARS are sweet!", a2, D);
    wk_embed_mock("sweet apples", b, D);
    wk_embed_mock("the stock market fell", c, D);
    wk_embed_mock("", z, D);
    assert_true(fabsf(cosine(a, a, D) - 1.0f) < 1e-5f);
    assert_memory_equal(a, a2, sizeof(a)); /* case and punctuation do not matter */
    assert_true(cosine(a, b, D) > 0.5f);
    assert_true(cosine(a, b, D) > cosine(a, c, D) + 0.3f);
    assert_true(cosine(z, z, D) == 0.0f); /* no words: the zero vector */
}

static void test_openai_wire(void **state)
{
    (void)state;
    char *body = wk_wire_openai_embed_body("text-embedding-3-small", "hi \"there\"");
    assert_string_equal(body,
                        "{\"model\":\"text-embedding-3-small\",\"input\":\"hi \\\"there\\\"\"}");
    free(body);
    body = wk_wire_openai_embed_body("", "x"); /* a server with one model needs none */
    assert_string_equal(body, "{\"input\":\"x\"}");
    free(body);

    struct ag_err err = AG_ERR_INIT;
    uint32_t dims = 0;
    const char *ok = "{\"object\":\"list\",\"data\":[{\"embedding\":[0.5,-1,2e-3],\"index\":0}]}";
    float *v = wk_wire_openai_parse_embedding(ok, strlen(ok), 4096, &dims, &err);
    assert_non_null(v);
    assert_int_equal(dims, 3);
    assert_true(v[0] == 0.5f && v[1] == -1.0f && fabsf(v[2] - 0.002f) < 1e-7f);
    free(v);
    assert_null(wk_wire_openai_parse_embedding(ok, strlen(ok), 2, &dims, &err));
    assert_int_equal(err.code, AG_UNKNOWN);
    assert_non_null(strstr(err.msg, "no data[0].embedding of 1 to 2 numbers"));
    const char *bad = "{\"data\":[{\"embedding\":[1,\"x\"]}]}";
    assert_null(wk_wire_openai_parse_embedding(bad, strlen(bad), 10, &dims, &err));
    assert_non_null(strstr(err.msg, "value 1 is no number"));
    const char *api = "{\"error\":{\"message\":\"model not found\"}}";
    assert_null(wk_wire_openai_parse_embedding(api, strlen(api), 10, &dims, &err));
    assert_int_equal(err.code, AG_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "model not found"));
    assert_null(wk_wire_openai_parse_embedding("nope", 4, 10, &dims, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mock),
        cmocka_unit_test(test_openai_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
