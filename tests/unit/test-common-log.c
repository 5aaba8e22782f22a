/* tests/unit/test-common-log.c - log lines (common/log.c): the text form stays logfmt, and the
 * JSON form is one parseable object per line with the same fields, every value a string. Each
 * test points stderr at a temporary file and reads back what one call wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/log.h"

/* What the calls in fn wrote to stderr, NUL-terminated, in buf. */
static void capture(char *buf, size_t cap, void (*fn)(void))
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
    fn();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void write_sample(void)
{
    ag_log_info("hub.started", "listen=%s port=%d msg=%s tag", "127.0.0.1:0", 7070,
                ag_log_q("say \"hi\"\\ now"));
}

static void test_text_is_logfmt(void **state)
{
    (void)state;
    ag_log_set_format(AG_LOG_TEXT);
    char out[1024];
    capture(out, sizeof(out), write_sample);
    assert_non_null(strstr(out, " level=info comp=test event=hub.started listen=127.0.0.1:0 "
                                "port=7070 msg=\"say \\\"hi\\\"\\\\ now\" tag\n"));
    assert_memory_equal(out, "ts=", 3);
}

static void test_json_has_the_same_fields(void **state)
{
    (void)state;
    ag_log_set_format(AG_LOG_JSON);
    char out[1024];
    capture(out, sizeof(out), write_sample);
    ag_log_set_format(AG_LOG_TEXT);
    size_t len = strlen(out);
    assert_true(len > 0 && out[len - 1] == '\n');
    assert_null(memchr(out, '\n', len - 1)); /* one line */
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    const char *want[][2] = {{"level", "info"},
                             {"comp", "test"},
                             {"event", "hub.started"},
                             {"listen", "127.0.0.1:0"},
                             {"port", "7070"},
                             {"msg", "say \"hi\"\\ now"},
                             {"tag", ""}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, want[i][0]);
        assert_true(cJSON_IsString(v));
        assert_string_equal(v->valuestring, want[i][1]);
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    assert_true(cJSON_IsString(ts) && strlen(ts->valuestring) == 24);
    cJSON_Delete(o);
}

static void write_control_and_long(void)
{
    static char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    ag_log_warn("x.happened", "ctl=%s big=%s", "a\tb\x01", big);
}

/* Control characters are escaped, and a line cut at the logfmt bound still parses. */
static void test_json_escapes_and_truncates(void **state)
{
    (void)state;
    ag_log_set_format(AG_LOG_JSON);
    char out[16384];
    capture(out, sizeof(out), write_control_and_long);
    ag_log_set_format(AG_LOG_TEXT);
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "ctl")->valuestring, "a\tb\x01");
    assert_true(strlen(cJSON_GetObjectItemCaseSensitive(o, "big")->valuestring) > 1000);
    cJSON_Delete(o);
}

static void test_format_parse(void **state)
{
    (void)state;
    enum ag_log_format f = AG_LOG_TEXT;
    struct ag_err err = AG_ERR_INIT;
    assert_int_equal(ag_log_format_parse("json", &f, &err), 0);
    assert_int_equal(f, AG_LOG_JSON);
    assert_int_equal(ag_log_format_parse("text", &f, &err), 0);
    assert_int_equal(f, AG_LOG_TEXT);
    assert_int_equal(ag_log_format_parse("yaml", &f, &err), -1);
    assert_non_null(strstr(err.msg, "want text or json"));
}

int main(void)
{
    ag_log_init("test", AG_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_logfmt),
        cmocka_unit_test(test_json_has_the_same_fields),
        cmocka_unit_test(test_json_escapes_and_truncates),
        cmocka_unit_test(test_format_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
