/* tests/unit/test-wk-openapi.c - OpenAPI 3 documents as tools (worker/openapi.c): operations
 * and their schemas (parameters, the JSON body, local $refs inlined and bounded), the base URL
 * (base_url, servers with variables, relative to the document), YAML converted to JSON (and a
 * document of aliases refused before it grows), and the request a call makes (path parameters
 * escaped, query arrays exploded, headers, body, a missing argument refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/openapi.h"

static const char pets_json[] =
    "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"pets\",\"version\":\"1\"},"
    "\"servers\":[{\"url\":\"https://{region}.pets.example/v{ver}\",\"variables\":{\"region\":{"
    "\"default\":\"eu\"},\"ver\":{\"default\":\"2\"}}}],"
    "\"paths\":{"
    "\"/pets/{petId}\":{\"parameters\":[{\"$ref\":\"#/components/parameters/PetId\"}],"
    "\"get\":{\"operationId\":\"getPet\",\"summary\":\"Get a pet.\",\"parameters\":[{\"name\":"
    "\"petId\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},{\"name\":\"fields\",\"in\":"
    "\"query\",\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},{\"name\":"
    "\"X-Req\",\"in\":\"header\",\"required\":true,\"schema\":{\"type\":\"string\"}},{\"name\":"
    "\"sid\",\"in\":\"cookie\",\"schema\":{\"type\":\"string\"}}]},"
    "\"put\":{\"operationId\":\"putPet\",\"description\":\"Replace it.\",\"requestBody\":{"
    "\"required\":true,\"content\":{\"application/json\":{\"schema\":{\"$ref\":\"#/components/"
    "schemas/Pet\"}}}}},"
    "\"delete\":{\"summary\":\"no operationId: not a tool\"}},"
    "\"/pets\":{\"post\":{\"operationId\":\"addPet\",\"parameters\":[{\"name\":\"body\",\"in\":"
    "\"query\",\"schema\":{\"type\":\"string\"}}],\"requestBody\":{\"$ref\":\"#/components/"
    "requestBodies/NewPet\"}}}},"
    "\"components\":{\"parameters\":{\"PetId\":{\"name\":\"petId\",\"in\":\"path\",\"required\":"
    "true,\"description\":\"the id\",\"schema\":{\"type\":\"integer\"}}},"
    "\"requestBodies\":{\"NewPet\":{\"content\":{\"application/vnd.pet+json\":{\"schema\":{"
    "\"$ref\":\"#/components/schemas/Pet\"}}}}},"
    "\"schemas\":{\"Pet\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"parent\":{\"$ref\":\"#/components/schemas/Pet\"}}}}}}";

static struct wk_openapi *parse(const char *doc, const char *doc_url,
                                const Agentry__V1__OpenApiSource *src, struct ag_err *err)
{
    return wk_openapi_parse(doc, strlen(doc), doc_url, src, err);
}

static struct wk_openapi *pets(void)
{
    Agentry__V1__OpenApiSource src = AGENTRY__V1__OPEN_API_SOURCE__INIT;
    src.name = "pets";
    struct ag_err err = AG_ERR_INIT;
    struct wk_openapi *api = parse(pets_json, NULL, &src, &err);
    if (!api)
        fail_msg("parse: %s", err.msg);
    return api;
}

static cJSON *schema_of(const struct wk_openapi_op *op)
{
    cJSON *s = cJSON_Parse(op->schema_json);
    assert_non_null(s);
    return s;
}

static void test_operations(void **state)
{
    (void)state;
    struct wk_openapi *api = pets();
    assert_int_equal(api->nops, 3);
    assert_string_equal(api->base_url, "https://eu.pets.example/v2");
    assert_string_equal(api->host, "eu.pets.example");
    const struct wk_openapi_op *get = wk_openapi_find(api, "getPet");
    assert_string_equal(get->method, "GET");
    assert_true(get->idempotent);
    assert_string_equal(get->description, "Get a pet.\n\nGET /pets/{petId}");
    assert_true(wk_openapi_find(api, "putPet")->idempotent);
    assert_false(wk_openapi_find(api, "addPet")->idempotent);
    assert_null(wk_openapi_find(api, "nope"));
    wk_openapi_free(api);
}

static void test_schemas(void **state)
{
    (void)state;
    struct wk_openapi *api = pets();
    /* The operation's query petId comes first; the path item's path petId gets "path_". */
    cJSON *s = schema_of(wk_openapi_find(api, "getPet"));
    cJSON *props = cJSON_GetObjectItem(s, "properties");
    assert_non_null(cJSON_GetObjectItem(props, "petId"));
    cJSON *path = cJSON_GetObjectItem(props, "path_petId");
    assert_string_equal(cJSON_GetObjectItem(path, "type")->valuestring, "integer");
    assert_string_equal(cJSON_GetObjectItem(path, "description")->valuestring, "the id");
    assert_non_null(cJSON_GetObjectItem(props, "fields"));
    assert_non_null(cJSON_GetObjectItem(props, "X-Req"));
    assert_null(cJSON_GetObjectItem(props, "sid")); /* a cookie */
    char *req = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "required"));
    assert_string_equal(req, "[\"X-Req\",\"path_petId\"]");
    free(req);
    cJSON_Delete(s);
    /* The body's $ref inlined; its cycle (Pet.parent) bounded, ending in {"type":"object"}. */
    s = schema_of(wk_openapi_find(api, "putPet"));
    cJSON *body = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "properties"), "body");
    assert_string_equal(cJSON_GetObjectItem(body, "type")->valuestring, "object");
    int depth = 0;
    for (cJSON *p = body; p; depth++) {
        cJSON *next = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "properties"), "parent");
        if (!next)
            break;
        p = next;
    }
    assert_int_equal(depth, WK_OPENAPI_MAX_DEPTH);
    req = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "required"));
    assert_string_equal(req, "[\"petId\",\"body\"]");
    free(req);
    cJSON_Delete(s);
    /* A +json body through a requestBodies $ref; a parameter named body moves it aside. */
    const struct wk_openapi_op *add = wk_openapi_find(api, "addPet");
    assert_string_equal(add->body_arg, "request_body");
    assert_false(add->body_required);
    wk_openapi_free(api);
}

static void request_is(const struct wk_openapi *api, const char *id, const char *args,
                       const char *want)
{
    struct ag_err err = AG_ERR_INIT;
    cJSON *req = wk_openapi_request(api, wk_openapi_find(api, id), args, &err);
    if (!req)
        fail_msg("request %s: %s", id, err.msg);
    char *got = cJSON_PrintUnformatted(req);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(req);
}

static void test_requests(void **state)
{
    (void)state;
    Agentry__V1__OpenApiSource src = AGENTRY__V1__OPEN_API_SOURCE__INIT;
    Agentry__V1__OpenApiSource__HeadersEntry h = AGENTRY__V1__OPEN_API_SOURCE__HEADERS_ENTRY__INIT;
    Agentry__V1__OpenApiSource__HeadersEntry *hs[] = {&h};
    h.key = "Authorization";
    h.value = "Bearer t";
    src.name = "pets";
    src.base_url = "http://127.0.0.1:8080/api/";
    src.headers = hs;
    src.n_headers = 1;
    struct ag_err err = AG_ERR_INIT;
    struct wk_openapi *api = parse(pets_json, NULL, &src, &err);
    assert_non_null(api);
    assert_string_equal(api->base_url, "http://127.0.0.1:8080/api");
    request_is(api, "getPet",
               "{\"path_petId\":\"a/b c?\",\"petId\":7,\"fields\":[\"x\",\"y&z\"],\"X-Req\":"
               "\"r1\"}",
               "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:8080/api/pets/a%2Fb%20c%3F?petId="
               "7&fields=x&fields=y%26z\",\"headers\":{\"X-Req\":\"r1\",\"Authorization\":\"Bearer "
               "t\",\"Accept\":\"application/json, */*;q=0.5\"}}");
    request_is(
        api, "putPet", "{\"petId\":1,\"body\":{\"name\":\"rex\"}}",
        "{\"method\":\"PUT\",\"body\":\"{\\\"name\\\":\\\"rex\\\"}\",\"url\":\"http://127.0.0"
        ".1:8080/api/pets/1\",\"headers\":{\"Authorization\":\"Bearer t\",\"Content-Type\":"
        "\"application/json\",\"Accept\":\"application/json, */*;q=0.5\"}}");
    /* Refused: a missing path parameter or required body, a header with a line break. */
    const char *bad[][2] = {{"putPet", "{\"body\":{}}"},
                            {"putPet", "{\"petId\":1}"},
                            {"getPet", "{\"path_petId\":1,\"X-Req\":\"a\\r\\nEvil: 1\"}"},
                            {"getPet", "[1]"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = (struct ag_err)AG_ERR_INIT;
        assert_null(wk_openapi_request(api, wk_openapi_find(api, bad[i][0]), bad[i][1], &err));
        assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    }
    wk_openapi_free(api);
}

static const char shop_yaml[] = "openapi: 3.0.3\n"
                                "info: {title: shop, version: '1'}\n"
                                "servers:\n"
                                "  - url: /api\n"
                                "paths:\n"
                                "  /items/{id}:\n"
                                "    get:\n"
                                "      operationId: getItem\n"
                                "      parameters:\n"
                                "        - {name: id, in: path, required: true, schema: {type: "
                                "integer}}\n"
                                "      responses:\n"
                                "        200: {description: ok}\n"
                                "    delete:\n"
                                "      operationId: dropItem\n"
                                "      parameters:\n"
                                "        - {name: id, in: path, schema: {type: integer}}\n";

static void test_yaml_and_bases(void **state)
{
    (void)state;
    Agentry__V1__OpenApiSource src = AGENTRY__V1__OPEN_API_SOURCE__INIT;
    src.name = "shop";
    struct ag_err err = AG_ERR_INIT;
    struct wk_openapi *api = parse(shop_yaml, "http://127.0.0.1:9/docs/shop.yaml", &src, &err);
    if (!api)
        fail_msg("%s", err.msg);
    assert_string_equal(api->base_url, "http://127.0.0.1:9/api");
    assert_int_equal(api->nops, 2);
    assert_string_equal(wk_openapi_find(api, "getItem")->schema_json,
                        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},"
                        "\"required\":[\"id\"]}");
    wk_openapi_free(api);
    /* A filter keeps only what it names, and refuses what the document lacks. */
    char *only[] = {"dropItem"};
    src.operations = only;
    src.n_operations = 1;
    api = parse(shop_yaml, "http://127.0.0.1:9/docs/shop.yaml", &src, &err);
    assert_int_equal(api->nops, 1);
    wk_openapi_free(api);
    char *unknown[] = {"dropItem", "nope"};
    src.operations = unknown;
    src.n_operations = 2;
    err = (struct ag_err)AG_ERR_INIT;
    assert_null(parse(shop_yaml, "http://127.0.0.1:9/x", &src, &err));
    assert_non_null(strstr(err.msg, "'nope'"));
    src.n_operations = 0;
    /* Inline (no URL to resolve /api against) and no base_url: an error naming base_url. */
    err = (struct ag_err)AG_ERR_INIT;
    assert_null(parse(shop_yaml, NULL, &src, &err));
    assert_non_null(strstr(err.msg, "base_url"));
}

static void test_bad_documents(void **state)
{
    (void)state;
    Agentry__V1__OpenApiSource src = AGENTRY__V1__OPEN_API_SOURCE__INIT;
    src.name = "x";
    src.base_url = "http://h";
    const char *docs[] = {
        "{\"swagger\":\"2.0\",\"paths\":{}}",
        "{\"openapi\":\"3.0.0\",\"paths\":{\"/a\":{\"get\":{}}}}", /* no operationId */
        "openapi: [unclosed",
        "{not json",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct ag_err err = AG_ERR_INIT;
        assert_null(parse(docs[i], NULL, &src, &err));
        assert_int_equal(err.code, AG_INVALID_ARGUMENT);
    }
    /* Aliases that double at each level: refused at WK_OPENAPI_MAX_NODES, not expanded. */
    char bomb[4096];
    size_t off = (size_t)snprintf(bomb, sizeof(bomb), "a0: &a0 [x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        off += (size_t)snprintf(bomb + off, sizeof(bomb) - off,
                                "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                                i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    struct ag_err err = AG_ERR_INIT;
    assert_null(wk_openapi_yaml_json(bomb, off, &err));
    assert_non_null(strstr(err.msg, "too large"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations),    cmocka_unit_test(test_schemas),
        cmocka_unit_test(test_requests),      cmocka_unit_test(test_yaml_and_bases),
        cmocka_unit_test(test_bad_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
