/* worker/model_rows.h - the functions behind each row of wk_model_providers (worker/model.c),
 * each defined in its provider's file. Private to worker/model*.c: the table and every provider
 * file include it, so a row and the function it names cannot disagree. */
#ifndef AGENTRY_WORKER_MODEL_ROWS_H
#define AGENTRY_WORKER_MODEL_ROWS_H

#include "worker/model.h"

/* worker/model_mock.c */
struct wk_provider *wk_model__mock_create(const struct wk_provider_ctx *ctx, struct ag_err *err);
int wk_model__mock_check_config(const struct wk_config *c, struct ag_err *err);
/* worker/model_http.c: one transport, two wire formats */
struct wk_provider *wk_model__openai_create(const struct wk_provider_ctx *ctx, struct ag_err *err);
struct wk_provider *wk_model__anthropic_create(const struct wk_provider_ctx *ctx,
                                               struct ag_err *err);
int wk_model__http_check_config(const struct wk_config *c, struct ag_err *err);

#endif
