/* placeholder until hub/hub.c lands */ typedef int hub_placeholder_t;
