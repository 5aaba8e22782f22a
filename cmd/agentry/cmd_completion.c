/* cmd/agentry/cmd_completion.c - shell completion: 'agentry completion bash|zsh' prints a script
 * for the shell to source, and the hidden 'agentry __complete WORD... CUR' is what the script
 * calls at each TAB, as cobra-based CLIs (kubectl) do: the candidates for the word being typed,
 * one per line, are computed here, so the script never goes stale.
 *
 * Candidates: command names; a command's subcommands (the table below); its flags, read from
 * the command's own --help (so from the same flag tables it parses with); the values of a few
 * flags (-o, --color, --state, --scheduler); and agent ids, from one ListAgents call with a
 * short deadline to the hub the words name (--hub, -n, --tls-dir, --token, else the
 * environment). Nothing printed (an unreachable hub, a FILE argument) lets the shell fall back
 * to file names. Thread: the main thread; stdout is borrowed while a command prints its help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/agentry/cli.h"
#include "cmd/agentry/client.h"
#include "cmd/agentry/print.h"
#include "common/xalloc.h"
#include "hub/sched.h"

#define COMPLETE_TIMEOUT_MS 1000 /* a TAB must not hang on a hub that does not answer */
#define COMPLETE_MAX_AGENTS 200

static const struct ag_cmd_help completion_help = {
    "agentry completion bash|zsh",
    "Print a script that completes agentry's commands, subcommands, flags and agent ids in bash "
    "or zsh. Load it in the current shell with 'source <(agentry completion bash)', or for every "
    "shell put that line in ~/.bashrc (zsh: ~/.zshrc with 'zsh'). Agent ids come from the hub "
    "the command line names (--hub, or $AGENTRY_HUB), asked with a 1s deadline at each TAB.",
    "source <(agentry completion bash)\nagentry completion zsh > \"${fpath[1]}/_agentry\"",
};

/* Commands with subcommands; a command not listed has none. */
static const struct {
    const char *cmd;
    const char *const subs[8]; /* NULL-terminated */
} subcommands[] = {
    {"node", {"join", "cordon", "uncordon", "drain", NULL}},
    {"schedule", {"create", "ls", "get", "pause", "resume", "delete", NULL}},
    {"memory", {"ls", "get", NULL}},
    {"certs", {"init", "issue", "show", NULL}},
    {"token", {"create", NULL}},
    {"spec", {"check", NULL}},
    {"config", {"view", "get-contexts", "use-context", "set-context", NULL}},
    {"completion", {"bash", "zsh", NULL}},
};

/* Commands (or "cmd sub") whose first argument is an agent id; approve, deny, send and memory
 * take more arguments after it. */
static const char *const takes_agent[] = {
    "get", "kill",   "trace",   "send", "resume",    "delete",
    "rm",  "export", "approve", "deny", "memory ls", "memory get",
};

static const char *const bash_script =
    "# bash completion for agentry: source <(agentry completion bash)\n"
    "_agentry() {\n"
    "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" IFS=$'\\n' out\n"
    "    out=$(\"${COMP_WORDS[0]}\" __complete \"${COMP_WORDS[@]:1:COMP_CWORD}\" 2>/dev/null)\n"
    "    COMPREPLY=($(compgen -W \"$out\" -- \"$cur\"))\n"
    "    if [ -z \"$out\" ]; then\n"
    "        compopt -o default 2>/dev/null\n"
    "    fi\n"
    "}\n"
    "complete -F _agentry agentry agent-hub agent-node\n";

static const char *const zsh_script =
    "#compdef agentry agent-hub agent-node\n"
    "# zsh completion for agentry: source <(agentry completion zsh)\n"
    "_agentry() {\n"
    "    local -a cands\n"
    "    cands=(\"${(@f)$(\"${words[1]}\" __complete \"${(@)words[2,CURRENT]}\" "
    "2>/dev/null)}\")\n"
    "    cands=(${cands:#})\n"
    "    if (( ${#cands} == 0 )); then\n"
    "        _files\n"
    "        return\n"
    "    fi\n"
    "    compadd -a cands\n"
    "}\n"
    "if (( ! $+functions[compdef] )); then\n"
    "    autoload -Uz compinit && compinit\n"
    "fi\n"
    "compdef _agentry agentry agent-hub agent-node\n";

int cli_cmd_completion(int argc, char **argv)
{
    size_t npos;
    char *pos[1] = {NULL};
    int rc;
    if (!cli_parse("completion", &completion_help, NULL, 0, argc, argv, pos, 1, &npos, &rc) ||
        !cli_need_args("completion", pos, npos, 1, "SHELL (bash or zsh)", &rc))
        return rc;
    if (strcmp(pos[0], "bash") == 0) {
        fputs(bash_script, stdout);
        return CLI_OK;
    }
    if (strcmp(pos[0], "zsh") == 0) {
        fputs(zsh_script, stdout);
        return CLI_OK;
    }
    fprintf(stderr, "error: unknown shell '%s': want bash or zsh\n", pos[0]);
    return CLI_USAGE;
}

/* --- __complete ------------------------------------------------------------------------------ */

static void put(const char *cand, const char *cur)
{
    if (strncmp(cand, cur, strlen(cur)) == 0)
        printf("%s\n", cand);
}

static const struct cli_cmd *find_cmd(const char *name)
{
    for (const struct cli_cmd *c = cli_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static const char *const *subs_of(const char *cmd)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(subcommands); i++)
        if (strcmp(subcommands[i].cmd, cmd) == 0)
            return subcommands[i].subs;
    return NULL;
}

/* The flags in a command's help: each line that starts with "  -x, --name" or "      --name". */
static void flags_from_help(const char *cmd, const char *sub, const char *cur)
{
    const struct cli_cmd *c = find_cmd(cmd);
    FILE *tmp = tmpfile();
    if (!c || !tmp)
        goto out;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    char *args[] = {(char *)(sub ? sub : "--help"), "--help", NULL};
    c->run(sub ? 2 : 1, args);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(tmp);
    char line[512];
    while (fgets(line, sizeof(line), tmp)) {
        char *p = line + strspn(line, " ");
        /* A flag starts at column 2 ("  -x, --name") or 6 ("      --name"); a "--name" deeper
         * in is a wrapped help line mentioning another flag. */
        if ((p - line != 2 && p - line != 6) || p[0] != '-')
            continue;
        if (p[1] != '-' && p[2] == ',') /* "-x, --name": the short form too */
            p += 4;
        if (strncmp(p, "--", 2) != 0 || strncmp(p, "--help", 6) == 0)
            continue;
        p[strcspn(p, " \n")] = '\0';
        put(p, cur);
    }
out:
    if (tmp)
        fclose(tmp);
}

/* The value of --name (or -s) in words, NULL if absent; "--name=v" counts too. */
static const char *word_flag(char **words, int n, const char *name, char short_name)
{
    const char *v = NULL;
    size_t len = strlen(name);
    for (int i = 0; i < n; i++) {
        const char *w = words[i];
        if (strncmp(w, "--", 2) == 0 && strncmp(w + 2, name, len) == 0 && w[2 + len] == '=')
            v = w + 3 + len;
        else if (i + 1 < n && ((strncmp(w, "--", 2) == 0 && strcmp(w + 2, name) == 0) ||
                               (short_name && w[0] == '-' && w[1] == short_name && !w[2])))
            v = words[i + 1];
    }
    return v;
}

static void agent_ids(char **words, int n, const char *cur)
{
    struct cli_client c;
    cli_client_init(&c, COMPLETE_TIMEOUT_MS);
    const char *hub = word_flag(words, n, "hub", 0);
    c.hub = hub ? hub : c.hub;
    c.tls.dir = word_flag(words, n, "tls-dir", 0);
    c.tls.ca = word_flag(words, n, "ca", 0);
    c.tls.cert = word_flag(words, n, "cert", 0);
    c.tls.key = word_flag(words, n, "key", 0);
    c.token = word_flag(words, n, "token", 0);
    const char *ns = word_flag(words, n, "namespace", 'n');
    Agentry__V1__ListAgentsRequest req = AGENTRY__V1__LIST_AGENTS_REQUEST__INIT;
    req.page_size = COMPLETE_MAX_AGENTS;
    req.namespace_ = (char *)(ns ? ns : cli_default_namespace());
    Agentry__V1__ListAgentsResponse *r = NULL;
    struct ag_err err = AG_ERR_INIT;
    if (cli_check_hub(c.hub, &err) == 0 &&
        cli_client_call(&c, CLI_HUB_METHOD("ListAgents"), &req.base,
                        &agentry__v1__list_agents_response__descriptor, (void **)&r, &err) == 0)
        for (size_t i = 0; i < r->n_agents; i++)
            put(r->agents[i]->id, cur);
    cli_client_close(&c);
}

/* Candidates for the value of flag `prev`; false if it is not a flag whose values we know. */
static bool flag_values(const char *prev, const char *cur)
{
    static const char *const formats[] = {"table", "wide", "json", "yaml", "jsonl"};
    static const char *const colors[] = {"auto", "always", "never"};
    static const char *const states[] = {"pending", "running", "idle",
                                         "yielded", "failed",  "killed"};
    if (strcmp(prev, "-o") == 0 || strcmp(prev, "--output") == 0) {
        for (size_t i = 0; i < AG_ARRAY_SIZE(formats); i++)
            put(formats[i], cur);
    } else if (strcmp(prev, "--color") == 0) {
        for (size_t i = 0; i < AG_ARRAY_SIZE(colors); i++)
            put(colors[i], cur);
    } else if (strcmp(prev, "--state") == 0) {
        for (size_t i = 0; i < AG_ARRAY_SIZE(states); i++)
            put(states[i], cur);
    } else if (strcmp(prev, "--scheduler") == 0) {
        for (const struct hub_sched_strategy *s = hub_sched_strategies; s->name; s++)
            put(s->name, cur);
    } else {
        return false;
    }
    return true;
}

/* The positional words after the command (and its subcommand): flags and, roughly, their
 * values skipped (a word after a flag that is not a bool is its value; bools are guessed from
 * the common ones). Enough to tell the first argument from the next. */
static int positional_count(char **words, int from, int to)
{
    static const char *const bools[] = {"-f",      "--follow", "-a",       "--all",
                                        "--json",  "-A",       "--tree",   "-w",
                                        "--watch", "--force",  "--no-wait"};
    int count = 0;
    for (int i = from; i < to; i++) {
        if (words[i][0] != '-') {
            count++;
            continue;
        }
        bool is_bool = strchr(words[i], '=') != NULL;
        for (size_t k = 0; k < AG_ARRAY_SIZE(bools); k++)
            is_bool = is_bool || strcmp(words[i], bools[k]) == 0;
        if (!is_bool)
            i++;
    }
    return count;
}

int cli_cmd_complete(int argc, char **argv)
{
    /* argv: the words after "agentry", the last one the word being completed (maybe ""). */
    const char *cur = argc > 0 ? argv[argc - 1] : "";
    if (argc <= 1) {
        for (const struct cli_cmd *c = cli_cmds; c->name; c++)
            if (c->name[0] != '_')
                put(c->name, cur);
        put("help", cur);
        return CLI_OK;
    }
    const char *cmd = argv[0];
    if (strcmp(cmd, "help") == 0) {
        if (argc == 2)
            for (const struct cli_cmd *c = cli_cmds; c->name; c++)
                if (c->name[0] != '_')
                    put(c->name, cur);
        return CLI_OK;
    }
    if (!find_cmd(cmd))
        return CLI_OK;
    const char *const *subs = subs_of(cmd);
    if (subs && argc == 2 && cur[0] != '-') {
        for (size_t i = 0; subs[i]; i++)
            put(subs[i], cur);
        return CLI_OK;
    }
    const char *sub = subs && argc > 2 ? argv[1] : NULL;
    if (argc >= 3 && flag_values(argv[argc - 2], cur))
        return CLI_OK;
    if (cur[0] == '-') {
        flags_from_help(cmd, sub, cur);
        return CLI_OK;
    }
    char name[64];
    snprintf(name, sizeof(name), "%s%s%s", cmd, sub ? " " : "", sub ? sub : "");
    int first = sub ? 2 : 1;
    for (size_t i = 0; i < AG_ARRAY_SIZE(takes_agent); i++)
        if (strcmp(takes_agent[i], name) == 0 && positional_count(argv, first, argc - 1) == 0)
            agent_ids(argv, argc - 1, cur);
    return CLI_OK;
}
