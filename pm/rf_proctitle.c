/*
 * rf_proctitle: overwrite the argv + environ strings with a process title,
 * as php-fpm (fpm_env_init_main / fpm_env_setproctitle) and nginx do on
 * Linux. The kernel reports /proc/<pid>/cmdline from the original argv
 * area; when its last byte is no longer NUL it reads on into the environ
 * area, so a title may use both once they are no longer needed in place.
 */
#include "rf_proctitle.h"

#include <errno.h> /* program_invocation_name */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static char *rf_pt_area;  /* argv[0]'s original string */
static char *rf_pt_env;   /* the environment's strings, moved here */
static size_t rf_pt_size; /* bytes from rf_pt_area to the last NUL, inclusive */

/* The end (its NUL) of the run of strings that starts at v[0] and
 * continues while each next one starts right after the previous NUL. */
static char *rf_pt_run_end(char *end, char *const *v, int n)
{
    for (int i = 0; (n < 0 || i < n) && v[i]; i++) {
        if (v[i] != end + 1)
            break;
        end = v[i] + strlen(v[i]);
    }
    return end;
}

void rf_proctitle_init(int argc, char **argv)
{
    if (rf_pt_area || argc < 1 || argv == NULL || argv[0] == NULL)
        return;

    char *first = argv[0];
    char *last = rf_pt_run_end(first + strlen(first), argv + 1, argc - 1);
    int contiguous_argv = 1;
    for (int i = 1; i < argc && argv[i]; i++)
        if (argv[i] > last)
            contiguous_argv = 0;
    /* environ continues the area only if all of argv did */
    if (contiguous_argv && environ)
        last = rf_pt_run_end(last, environ, -1);

    /* Copy everything that points into [first, last] before it is reused. */
    size_t nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    /* The environment's strings in one block the process keeps for good
     * (rf_pt_env): unsetenv() drops entries from environ, not the block. */
    size_t env_bytes = 0;
    for (size_t i = 0; i < nenv; i++)
        env_bytes += strlen(environ[i]) + 1;
    char **env = calloc(nenv + 1, sizeof(*env));
    char *block = malloc(env_bytes ? env_bytes : 1);
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    char *name = strdup(argv[0]);
    int ok = env && block && args && name;
    for (size_t i = 0, off = 0; ok && i < nenv; i++) {
        size_t n = strlen(environ[i]) + 1;
        env[i] = memcpy(block + off, environ[i], n);
        off += n;
    }
    for (int i = 0; ok && i < argc && argv[i]; i++)
        ok = (args[i] = strdup(argv[i])) != NULL;
    if (!ok) {
        free(block);
        for (int i = 0; args && i < argc; i++)
            free(args[i]);
        free(env);
        free(args);
        free(name);
        return;
    }
    for (int i = 0; i < argc && argv[i]; i++)
        argv[i] = args[i];
    free(args); /* the strings live on, owned by argv[] for good */
    if (environ) {
        environ = env;
        rf_pt_env = block;
    } else {
        free(env);
        free(block);
    }
    program_invocation_name = name;
    char *slash = strrchr(name, '/');
    program_invocation_short_name = slash ? slash + 1 : name;

    rf_pt_area = first;
    rf_pt_size = (size_t)(last - first) + 1;
}

unsigned long rf_proctitle_room(void)
{
    return rf_pt_size ? rf_pt_size - 1 : 0;
}

void rf_proctitle_set(const char *fmt, ...)
{
    /* Format straight into the area: it may be far larger than any stack
     * buffer (the whole environment). Without one, a small buffer is
     * enough for the thread name. */
    char small[32];
    char *dst = rf_pt_area ? rf_pt_area : small;
    size_t size = rf_pt_area ? rf_pt_size : sizeof(small);
    size_t plen = sizeof(RF_PROCTITLE_PREFIX) - 1;
    if (plen > size - 1)
        plen = size - 1;
    memcpy(dst, RF_PROCTITLE_PREFIX, plen);
    dst[plen] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + plen, size - plen, fmt, ap);
    va_end(ap);
    size_t n = strlen(dst);
    memset(dst + n, 0, size - n);
    /* The thread name (comm) stays the program's: pidof, pgrep -x and
     * ps -C find ringfpm's processes as they find php-fpm's. */
}
