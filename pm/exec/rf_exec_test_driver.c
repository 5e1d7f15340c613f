/*
 * rf-exec-pair — test and bench driver for rf_exec: one program plays
 * master, responder and (in a forked child) executor over one rf_chan
 * channel. Used by tests/integration/test_exec.py.
 *
 *   rf-exec-pair [-n N] [-q DEPTH] [-S SPIN] [-m MAX_REQUESTS] [-c INI] [-N]
 *                [-d NAME=VALUE]... [-x LIMIT_EXTENSIONS] [-b BODY] [-A]
 *                SCRIPT... [NAME=VALUE...]
 *
 * Sends N requests (default 1), cycling through the SCRIPTs (each becomes
 * SCRIPT_FILENAME; REQUEST_METHOD defaults to GET, or POST with -b), with
 * up to DEPTH (default 1) queued on the channel at once. Prints the first
 * response's raw CGI output on stdout, or with -A every response framed as
 *   "=== <i> app=<status> proto=<status> out=<bytes> err=<bytes>\n"
 *   <out bytes> "\n=== stderr\n" <err bytes> "\n"
 * On stderr: the first response's STDERR text ("stderr: ..."), its status
 * ("exit_status=N"), then one summary line
 *   "requests=N errors=E mismatches=M status255=K req_per_s=R
 *    exec_vcsw_per_req=V exec_nvcsw_per_req=W resp_vcsw_per_req=X
 *    exec_wakes_per_req=Y exec_waits_per_req=Z executor_exit=S"
 * errors: protocol status != 0, slot/gen mismatch, channel broken, executor
 * died; mismatches: stdout differing from the first response of the same
 * script. Timing and the per-request counters cover requests 2..N (the
 * first one compiles the script). Exit status 0 unless errors > 0 or setup
 * failed (70).
 */
#include "rf_chan.h"
#include "rf_exec.h"
#include "rf_php.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void buf_add(buf_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            perror("realloc");
            exit(71);
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* voluntary / involuntary context switches of pid (0 = self) */
static void ctxsw(pid_t pid, long *vol, long *nvol)
{
    char path[64], line[256];
    FILE *f;

    *vol = *nvol = -1;
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
            *vol = atol(line + 24);
        else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
            *nvol = atol(line + 27);
    }
    fclose(f);
}

static void usage(void)
{
    fprintf(stderr, "usage: rf-exec-pair [-n N] [-q DEPTH] [-S SPIN] [-m MAX] [-c INI] [-N] "
                    "[-d K=V]... [-x EXTS] [-b BODY] [-A] SCRIPT... [NAME=VALUE...]\n");
    exit(64);
}

typedef struct {
    uint32_t gen;
    size_t script;
    buf_t out, err;
} inflight_t;

int main(int argc, char **argv)
{
    rf_php_opts_t popts = {0};
    const char **defines = calloc((size_t)argc, sizeof(*defines));
    const char **scripts = calloc((size_t)argc, sizeof(*scripts));
    rf_php_param_t *params = calloc((size_t)argc + 3, sizeof(*params));
    size_t nscripts = 0, np = 1; /* params[0] = SCRIPT_FILENAME */
    long n = 1, depth = 1, maxreq = 0;
    uint32_t spin = 0;
    const char *body = NULL;
    int opt, all = 0, have_method = 0, have_len = 0;

    if (!defines || !scripts || !params)
        return 71;
    while ((opt = getopt(argc, argv, "+n:q:S:m:c:Nd:x:b:A")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'q':
            depth = atol(optarg);
            break;
        case 'S':
            spin = (uint32_t)atol(optarg);
            break;
        case 'm':
            maxreq = atol(optarg);
            break;
        case 'c':
            popts.ini_path = optarg;
            break;
        case 'N':
            popts.no_ini = 1;
            break;
        case 'd':
            defines[popts.ndefines++] = optarg;
            break;
        case 'x':
            popts.limit_extensions = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        case 'A':
            all = 1;
            break;
        default:
            usage();
        }
    }
    popts.defines = defines;
    if (n < 1 || depth < 1 || depth > 1024)
        usage();
    for (int i = optind; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            scripts[nscripts++] = argv[i];
            continue;
        }
        size_t nl = (size_t)(eq - argv[i]);
        params[np++] = (rf_php_param_t){argv[i], nl, eq + 1, strlen(eq + 1)};
        have_method |= nl == 14 && memcmp(argv[i], "REQUEST_METHOD", 14) == 0;
        have_len |= nl == 14 && memcmp(argv[i], "CONTENT_LENGTH", 14) == 0;
    }
    if (!nscripts)
        usage();
    char clen[32];
    if (body && !have_len) {
        snprintf(clen, sizeof(clen), "%zu", strlen(body));
        params[np++] = (rf_php_param_t){"CONTENT_LENGTH", 14, clen, strlen(clen)};
    }
    if (!have_method) {
        const char *m = body ? "POST" : "GET";
        params[np++] = (rf_php_param_t){"REQUEST_METHOD", 14, m, strlen(m)};
    }

    /* master: PHP first (so the executor inherits it), then the channel */
    int rc = rf_php_startup(&popts);
    if (rc < 0) {
        fprintf(stderr, "rf_php_startup: %s\n", strerror(-rc));
        return 70;
    }
    rf_chan_opts_t copts = {0};
    copts.spin = spin;
    rf_chan_t *ch;
    rc = rf_chan_create(&copts, &ch);
    if (rc < 0) {
        fprintf(stderr, "rf_chan_create: %s\n", strerror(-rc));
        return 70;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 70;
    }
    if (child == 0) {
        rf_exec_opts_t eo;
        rf_exec_opts_init(&eo);
        eo.max_requests = (uint32_t)maxreq;
        rf_chan_close_fd(ch);
        rc = rf_exec_main(ch, &eo);
        if (rc < 0)
            fprintf(stderr, "rf_exec_main: %s\n", strerror(-rc));
        _exit(rc < 0 ? 1 : 0);
    }

    /* responder: pre-encode one payload per script */
    size_t blen = body ? strlen(body) : 0;
    uint8_t **pay = calloc(nscripts, sizeof(*pay));
    rf_chan_req_t *reqs = calloc(nscripts, sizeof(*reqs));
    long *paylen = calloc(nscripts, sizeof(*paylen));
    buf_t *first = calloc(nscripts, sizeof(*first));
    int *have_first = calloc(nscripts, sizeof(*have_first));
    inflight_t *fl = calloc((size_t)depth, sizeof(*fl));
    if (!pay || !reqs || !paylen || !first || !have_first || !fl)
        return 71;
    for (size_t s = 0; s < nscripts; s++) {
        params[0] = (rf_php_param_t){"SCRIPT_FILENAME", 15, scripts[s], strlen(scripts[s])};
        long need = rf_exec_encode_request(NULL, 0, params, np, body, blen, NULL);
        pay[s] = malloc((size_t)need);
        paylen[s] = rf_exec_encode_request(pay[s], (size_t)need, params, np, body, blen, &reqs[s]);
        if (!pay[s] || paylen[s] != need) {
            fprintf(stderr, "encode failed\n");
            return 70;
        }
    }

    long sent = 0, recvd = 0, errors = 0, mismatches = 0, st255 = 0;
    long ev0 = 0, env0 = 0, rv0 = 0, tmp;
    double t0 = 0;
    int child_status = -1, dead = 0;
    uint32_t ex_first_app = 0;
    rf_chan_stats_t ps0 = {0};

    while (recvd < n && !dead) {
        /* queue up to depth requests */
        while (sent < n && sent - recvd < depth) {
            size_t s = (size_t)sent % nscripts;
            inflight_t *f = &fl[sent % depth];
            rf_chan_req_t rq = reqs[s];
            struct iovec iov = {pay[s], (size_t)paylen[s]};
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rq.slot = (uint32_t)(sent % depth);
            rq.gen = (uint32_t)sent;
            rq.t_queued_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            rc = rf_chan_resp_send_request(ch, &rq, &iov, 1);
            if (rc == -ENOBUFS)
                break;
            if (rc < 0) {
                fprintf(stderr, "send_request: %s\n", strerror(-rc));
                errors++;
                dead = 1;
                break;
            }
            f->gen = rq.gen;
            f->script = s;
            f->out.n = f->err.n = 0;
            sent++;
        }
        if (dead)
            break;
        rf_chan_msg_t m;
        rc = rf_chan_resp_next(ch, &m);
        if (rc < 0) {
            fprintf(stderr, "resp_next: %s\n", strerror(-rc));
            errors++;
            break;
        }
        if (rc == 0) {
            (void)rf_chan_resp_release(ch);
            rc = rf_chan_resp_wait(ch, 200);
            if (rc < 0 && rc != -EINTR) {
                fprintf(stderr, "resp_wait: %s\n", strerror(-rc));
                errors++;
                break;
            }
            if (rc == 0 && waitpid(child, &child_status, WNOHANG) == child) {
                fprintf(stderr, "executor died (status 0x%x)\n", child_status);
                errors++;
                dead = 1;
            }
            continue;
        }
        if (m.type == RF_CHAN_DONE)
            continue; /* a script that called fastcgi_finish_request returned */
        inflight_t *f = &fl[recvd % depth];
        if (m.slot != (uint32_t)(recvd % depth) || m.gen != f->gen) {
            fprintf(stderr, "slot/gen mismatch: got %u/%u want %ld/%u\n", m.slot, m.gen,
                    recvd % depth, f->gen);
            rf_chan_resp_set_broken(ch);
            errors++;
            break;
        }
        if (m.type == RF_CHAN_STDOUT) {
            buf_add(&f->out, m.data, m.len);
            continue;
        }
        if (m.type == RF_CHAN_STDERR) {
            buf_add(&f->err, m.data, m.len);
            continue;
        }
        if (m.type != RF_CHAN_END)
            continue; /* FLUSH: a real responder sends now */
        if (m.arg1 != 0)
            errors++;
        if (m.arg0 == 255)
            st255++;
        if (!have_first[f->script]) {
            have_first[f->script] = 1;
            buf_add(&first[f->script], f->out.p ? f->out.p : "", f->out.n);
        } else if (first[f->script].n != f->out.n ||
                   memcmp(first[f->script].p, f->out.p, f->out.n) != 0) {
            mismatches++;
        }
        if (all) {
            printf("=== %ld app=%u proto=%u out=%zu err=%zu\n", recvd, m.arg0, m.arg1, f->out.n,
                   f->err.n);
            fwrite(f->out.p, 1, f->out.n, stdout);
            printf("\n=== stderr\n");
            fwrite(f->err.p, 1, f->err.n, stdout);
            printf("\n");
        } else if (recvd == 0) {
            fwrite(f->out.p, 1, f->out.n, stdout);
        }
        if (recvd == 0) {
            ex_first_app = m.arg0;
            fprintf(stderr, "stderr: %.*s\n", (int)f->err.n, f->err.p ? f->err.p : "");
            fprintf(stderr, "exit_status=%u\n", m.arg0);
        }
        recvd++;
        if (recvd == 1) {
            /* start of the measured part */
            (void)rf_chan_resp_release(ch);
            ctxsw(child, &ev0, &env0);
            ctxsw(0, &rv0, &tmp);
            rf_chan_peer_stats(ch, &ps0);
            t0 = now_s();
        }
    }
    (void)rf_chan_resp_release(ch);
    double dt = now_s() - t0;
    long ev1, env1, rv1;
    rf_chan_stats_t ps1;
    ctxsw(child, &ev1, &env1);
    ctxsw(0, &rv1, &tmp);
    rf_chan_peer_stats(ch, &ps1);
    long meas = recvd - 1;

    if (!dead) {
        /* An executor at its max_requests exits on its own, right after its
         * last END: give it a moment before asking. */
        int exited = 0;
        for (int i = 0; i < (maxreq ? 100 : 0) && !exited; i++) {
            exited = waitpid(child, &child_status, WNOHANG) == child;
            if (!exited)
                usleep(10000);
        }
        if (!exited) {
            kill(child, SIGTERM);
            waitpid(child, &child_status, 0);
        }
    }
    if (recvd < n)
        errors++;
    double per = meas > 0 ? (double)meas : 1;
    fprintf(stderr,
            "requests=%ld errors=%ld mismatches=%ld status255=%ld req_per_s=%.0f "
            "exec_vcsw_per_req=%.3f exec_nvcsw_per_req=%.3f resp_vcsw_per_req=%.3f "
            "exec_wakes_per_req=%.3f exec_waits_per_req=%.3f executor_exit=%d\n",
            recvd, errors, mismatches, st255, meas > 0 && dt > 0 ? (double)meas / dt : 0.0,
            (double)(ev1 - ev0) / per, (double)(env1 - env0) / per, (double)(rv1 - rv0) / per,
            (double)(ps1.wakes - ps0.wakes) / per, (double)(ps1.waits - ps0.waits) / per,
            WIFEXITED(child_status)     ? WEXITSTATUS(child_status)
            : WIFSIGNALED(child_status) ? -WTERMSIG(child_status)
                                        : -1);
    (void)ex_first_app;
    rf_chan_destroy(ch);
    return errors ? 1 : 0;
}
