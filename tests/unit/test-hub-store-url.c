/* tests/unit/test-hub-store-url.c - a store URL shown in logs and errors never carries its
 * password: a URI's "user:PASS@", a keyword conninfo's password=VALUE (plain or quoted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hub/store.h"

static void expect(const char *url, const char *want)
{
    char buf[256];
    hub_store_url_redact(url, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_redact(void **state)
{
    (void)state;
    expect("sqlite:agentry.db", "sqlite:agentry.db");
    expect("postgres://u:s3cret@db:5432/agentry", "postgres://u:***@db:5432/agentry");
    expect("postgresql://u@db/agentry", "postgresql://u@db/agentry");
    expect("postgres://db:5432/agentry", "postgres://db:5432/agentry");
    expect("postgres://db/a?user=x@y", "postgres://db/a?user=x@y"); /* '@' past the path */
    expect("postgres:host=db password=s3cret dbname=a", "postgres:host=db password=*** dbname=a");
    expect("postgres:password='a b\\' c' host=db", "postgres:password=*** host=db");
    expect("postgres:password=x", "postgres:password=***");
}

static void test_truncates(void **state)
{
    (void)state;
    char buf[12];
    hub_store_url_redact("postgres://u:pw@host/db", buf, sizeof(buf));
    assert_string_equal(buf, "postgres://");
    char one[1];
    hub_store_url_redact("sqlite:x", one, sizeof(one));
    assert_string_equal(one, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
