/* worker/tool_rows.h - the functions behind each row of wk_tools (worker/tool.c), each defined
 * in its tool's file, worker/tool_<name>.c. Private to worker/tool*.c: the table and every tool
 * file include it, so a row and the function it names cannot disagree. */
#ifndef AGENTRY_WORKER_TOOL_ROWS_H
#define AGENTRY_WORKER_TOOL_ROWS_H

#include "worker/tool.h"

/* worker/tool_echo.c */
int wk_tool__echo_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                      wk_tool_done_fn *done, void *arg, struct ag_err *err);
int wk_tool__echo_check_config(const struct wk_config *c, struct ag_err *err);
/* worker/tool_append.c */
int wk_tool__append_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                        const char *args_json, wk_tool_done_fn *done, void *arg,
                        struct ag_err *err);
int wk_tool__append_check_config(const struct wk_config *c, struct ag_err *err);
/* worker/tool_read_file.c */
int wk_tool__read_file_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                           const char *args_json, wk_tool_done_fn *done, void *arg,
                           struct ag_err *err);
int wk_tool__read_file_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__read_file_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__read_file_subject(const char *args_json);
/* worker/tool_read_lines.c */
int wk_tool__read_lines_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err);
int wk_tool__read_lines_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__read_lines_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__read_lines_subject(const char *args_json);
/* worker/tool_write_file.c */
int wk_tool__write_file_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err);
int wk_tool__write_file_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__write_file_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__write_file_subject(const char *args_json);
/* worker/tool_edit_range.c */
int wk_tool__edit_range_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err);
int wk_tool__edit_range_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__edit_range_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__edit_range_subject(const char *args_json);
/* worker/tool_list_dir.c */
int wk_tool__list_dir_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                          const char *args_json, wk_tool_done_fn *done, void *arg,
                          struct ag_err *err);
int wk_tool__list_dir_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__list_dir_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__list_dir_subject(const char *args_json);
/* worker/tool_search_files.c */
int wk_tool__search_files_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                              const char *args_json, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err);
int wk_tool__search_files_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__search_files_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__search_files_subject(const char *args_json);
/* worker/tool_shell.c */
int wk_tool__shell_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                       const char *args_json, wk_tool_done_fn *done, void *arg, struct ag_err *err);
int wk_tool__shell_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__shell_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__shell_subject(const char *args_json);
/* worker/tool_http_request.c */
int wk_tool__http_request_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                              const char *args_json, wk_tool_done_fn *done, void *arg,
                              struct ag_err *err);
int wk_tool__http_request_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__http_request_check_settings(const char *settings_json, struct ag_err *err);
char *wk_tool__http_request_subject(const char *args_json);
/* worker/tool_hub.c: the tools the hub runs (spawn_agent, send_agent, wait_agent) */
int wk_tool__hub_run(const struct wk_tool *t, const struct wk_call_ctx *ctx, const char *args_json,
                     wk_tool_done_fn *done, void *arg, struct ag_err *err);
/* worker/tool_memory.c: memory_put and memory_search, which embed first (memory_get, _list,
 * _delete are worker/tool_hub.c's) */
int wk_tool__memory_put_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                            const char *args_json, wk_tool_done_fn *done, void *arg,
                            struct ag_err *err);
int wk_tool__memory_search_run(const struct wk_tool *t, const struct wk_call_ctx *ctx,
                               const char *args_json, wk_tool_done_fn *done, void *arg,
                               struct ag_err *err);
int wk_tool__memory_search_check_config(const struct wk_config *c, struct ag_err *err);
int wk_tool__memory_search_check_settings(const char *settings_json, struct ag_err *err);

#endif
