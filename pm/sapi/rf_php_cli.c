/*
 * rf-php-run — test driver for rf_php: starts PHP like php-fpm would, runs
 * one request and prints the raw CGI output (header block + body) on stdout
 * and each log message (what php-fpm sends in FCGI_STDERR) as one line on
 * stderr. Used by tests/integration/test_php_sapi.py.
 *
 *   rf-php-run [-c INI] [-n] [-d NAME=VALUE]... [-x LIMIT_EXTENSIONS] [-r N]
 *              SCRIPT_FILENAME [NAME=VALUE...] < body
 *
 * -r N runs the same request N times in the one process (as an executor
 * does); the body is only there for the first.
 *
 * SCRIPT_FILENAME "-" means: do not send that param. REQUEST_METHOD defaults
 * to GET (POST when CONTENT_LENGTH is given); an explicit NAME= overrides.
 * Exit status: the script's exit status, or 70 if PHP failed to start.
 * After the request, "exit_status=N" is printed on stderr.
 */
#include "rf_php.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t cli_write(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    return write(STDOUT_FILENO, p, n);
}

static ssize_t cli_read_body(void *ctx, char *buf, size_t n)
{
    (void)ctx;
    return read(STDIN_FILENO, buf, n);
}

static int cli_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static void cli_log(void *ctx, const char *msg, size_t n)
{
    (void)ctx;
    fprintf(stderr, "%.*s\n", (int)n, msg);
}

static int cli_finish(void *ctx)
{
    (void)ctx;
    fprintf(stderr, "fastcgi_finish_request\n");
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: rf-php-run [-c INI] [-n] [-d K=V]... [-x EXTS] [-r N] SCRIPT_FILENAME "
                    "[NAME=VALUE...] < body\n");
    exit(64);
}

int main(int argc, char **argv)
{
    rf_php_opts_t opts = {0};
    const char **defines = calloc((size_t)argc, sizeof(*defines));
    rf_php_param_t *params = calloc((size_t)argc + 2, sizeof(*params));
    size_t np = 0;
    int opt, st = 0, have_method = 0, have_len = 0, repeat = 1;

    if (!defines || !params) {
        return 71;
    }
    while ((opt = getopt(argc, argv, "+c:nd:x:r:")) != -1) {
        switch (opt) {
        case 'c':
            opts.ini_path = optarg;
            break;
        case 'n':
            opts.no_ini = 1;
            break;
        case 'd':
            defines[opts.ndefines++] = optarg;
            break;
        case 'x':
            opts.limit_extensions = optarg;
            break;
        case 'r':
            repeat = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    opts.defines = defines;
    if (optind >= argc) {
        usage();
    }
    if (strcmp(argv[optind], "-") != 0) {
        params[np++] = (rf_php_param_t){"SCRIPT_FILENAME", 15, argv[optind], strlen(argv[optind])};
    }
    for (int i = optind + 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            usage();
        }
        size_t nl = (size_t)(eq - argv[i]);
        params[np++] = (rf_php_param_t){argv[i], nl, eq + 1, strlen(eq + 1)};
        have_method |= nl == 14 && memcmp(argv[i], "REQUEST_METHOD", 14) == 0;
        have_len |= nl == 14 && memcmp(argv[i], "CONTENT_LENGTH", 14) == 0;
    }
    if (!have_method) {
        const char *m = have_len ? "POST" : "GET";
        params[np++] = (rf_php_param_t){"REQUEST_METHOD", 14, m, strlen(m)};
    }

    int rc = rf_php_startup(&opts);
    if (rc < 0) {
        fprintf(stderr, "rf_php_startup: %s\n", strerror(-rc));
        return 70;
    }
    rf_php_io_t io = {
        .ctx = NULL,
        .write = cli_write,
        .read_body = cli_read_body,
        .flush = cli_flush,
        .log = cli_log,
        .finish = cli_finish,
        .aborted = NULL,
    };
    for (int i = 0; i < repeat; i++) {
        rc = rf_php_execute(params, np, &io, 0, &st);
        if (rc < 0) {
            fprintf(stderr, "rf_php_execute: %s\n", strerror(-rc));
            return 70;
        }
        fprintf(stderr, "exit_status=%d\n", st);
    }
    rf_php_shutdown();
    free(defines);
    free(params);
    return st;
}
