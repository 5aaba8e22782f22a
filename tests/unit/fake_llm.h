/* tests/unit/fake_llm.h - start tests/fake_llm.py as a child process and ask it for its counters.
 *
 * Header-only (static inline) so each test file that needs the fake server includes it without a
 * library of its own. The server binds 127.0.0.1 on a free port and writes it to a file once it
 * listens; we wait for the file, and stop the server by its PID (SIGTERM, then waitpid). Stats are
 * fetched with a blocking libcurl easy request, outside the code under test. */
#ifndef AGENTRY_TESTS_FAKE_LLM_H
#define AGENTRY_TESTS_FAKE_LLM_H

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

struct fake_llm {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
};

static inline void fake_llm_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 0 when the server listens, -1 if it did not within 20 s. */
static inline int fake_llm_start(struct fake_llm *f)
{
    const char *src = getenv("AGENTRY_SRC");
    char script[512], portfile[64];
    snprintf(script, sizeof(script), "%s/tests/fake_llm.py", src ? src : ".");
    snprintf(portfile, sizeof(portfile), "/tmp/fake_llm.%d.port", (int)getpid());
    unlink(portfile);
    f->pid = fork();
    if (f->pid == 0) {
        execl("/usr/bin/python3", "python3", script, "--port-file", portfile, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *fp = fopen(portfile, "r");
        if (fp) {
            int ok = fscanf(fp, "%d", &f->port) == 1;
            fclose(fp);
            unlink(portfile);
            if (ok) {
                snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
                return 0;
            }
        }
        fake_llm_sleep_ms(50);
    }
    return -1;
}

static inline void fake_llm_stop(struct fake_llm *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

static inline size_t fake_llm__collect(char *p, size_t size, size_t n, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + size * n + 1);
    memcpy(*buf + old, p, size * n);
    (*buf)[old + size * n] = '\0';
    return size * n;
}

/* method path [body] -> the parsed JSON answer (cJSON_Delete it), NULL on failure. */
static inline cJSON *fake_llm_call(const struct fake_llm *f, const char *method, const char *path,
                                   const char *body)
{
    char url[256], *buf = NULL;
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fake_llm__collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    cJSON *j = rc == CURLE_OK && buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    return j;
}

/* A number from /_stats ("requests", "aborted", "connections"), -1 on failure. */
static inline long fake_llm_stat(const struct fake_llm *f, const char *name)
{
    cJSON *j = fake_llm_call(f, "GET", "/_stats", NULL);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    long n = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    cJSON_Delete(j);
    return n;
}

/* Wait up to 10 s for stat name to reach at least want; returns the last value seen. */
static inline long fake_llm_wait_stat(const struct fake_llm *f, const char *name, long want)
{
    long n = -1;
    for (int i = 0; i < 200; i++) {
        n = fake_llm_stat(f, name);
        if (n >= want)
            break;
        fake_llm_sleep_ms(50);
    }
    return n;
}

#endif
