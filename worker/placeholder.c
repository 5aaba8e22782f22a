/* placeholder until worker files land */ typedef int worker_placeholder_t;
