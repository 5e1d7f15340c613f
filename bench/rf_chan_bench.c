/*
 * rf_chan_bench: round-trip latency and message rate of pm/rf_chan.c
 * between two processes (parent = responder, forked child = executor).
 *
 *   ping-pong  one request in flight: request -> END, round trip time
 *   streaming  up to `window` requests in flight: request -> STDOUT + END
 *
 * Each runs with the executor sleeping at once (spin 0) and with a short
 * poll before sleeping (spin N); the responder, like a busy event loop,
 * polls the same N times before it sleeps. Syscalls per message are the
 * doorbell operations the channel counts (FUTEX_WAKE + sleep announcements,
 * an upper bound on FUTEX_WAIT calls) over all messages in both directions;
 * voluntary context switches come from getrusage for both processes.
 *
 * usage: rf_chan_bench [pingpong_count [stream_count [window]]]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rf_chan.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int executor(rf_chan_t *ch, uint32_t count, int with_stdout)
{
    static const char out[] = "Content-type: text/html\r\n\r\nhello";

    rf_chan_close_fd(ch);
    for (uint32_t i = 0; i < count;) {
        rf_chan_msg_t m;
        int r = rf_chan_exec_next(ch, &m);
        if (r < 0)
            return 2;
        if (r == 0) {
            rf_chan_exec_release(ch);
            if (rf_chan_exec_wait(ch, 10000) != 1)
                return 3;
            continue;
        }
        /* Free the request's space before END: the responder learns the
         * ring has room from the END it reads anyway. */
        rf_chan_exec_release(ch);
        if (with_stdout &&
            rf_chan_exec_write(ch, RF_CHAN_STDOUT, m.slot, m.gen, out, sizeof(out) - 1) < 0)
            return 4;
        if (rf_chan_exec_end(ch, m.slot, m.gen, 0, 0) < 0)
            return 5;
        i++;
    }
    rf_chan_exec_release(ch);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Responder poll-then-sleep, like a loop that finds nothing else to do. */
static int resp_wait(rf_chan_t *ch, uint32_t spin)
{
    for (uint32_t i = 0; i < spin; i++) {
        rf_chan_msg_t m;
        int r = rf_chan_resp_peek(ch, &m);
        if (r != 0)
            return r;
        __builtin_ia32_pause();
    }
    int r = rf_chan_resp_wait(ch, 10000);
    return r == 0 ? -ETIMEDOUT : r;
}

static int run(const char *name, uint32_t count, uint32_t window, uint32_t spin)
{
    rf_chan_opts_t o = {.spin = spin};
    rf_chan_t *ch;
    char params[512];
    struct rusage ru0, ru1, rc;
    double *lat = window == 1 ? calloc(count, sizeof(double)) : NULL;
    int status;

    memset(params, 'x', sizeof(params));
    if (rf_chan_create(&o, &ch) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(executor(ch, count, window > 1));
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s(), ts = 0;
    uint32_t sent = 0, done = 0;
    while (done < count) {
        while (sent < count && sent - done < window) {
            rf_chan_req_t rq = {.slot = sent, .gen = 1, .params_len = sizeof(params)};
            struct iovec iov = {params, sizeof(params)};
            /* Before the send: its FUTEX_WAKE may run the executor at once. */
            if (lat)
                ts = now_s();
            int r = rf_chan_resp_send_request(ch, &rq, &iov, 1);
            if (r == -ENOBUFS)
                break;
            if (r < 0)
                return 1;
            sent++;
        }
        rf_chan_msg_t m;
        int r, got = 0;
        while ((r = rf_chan_resp_next(ch, &m)) == 1) {
            got++;
            if (m.type == RF_CHAN_END) {
                if (lat)
                    lat[done] = now_s() - ts;
                done++;
            }
        }
        if (r < 0 || rf_chan_resp_release(ch) < 0)
            return 1;
        if (!got && resp_wait(ch, spin) < 0)
            return 1;
    }
    double el = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    waitpid(pid, &status, 0);
    getrusage(RUSAGE_CHILDREN, &rc); /* cumulative over earlier runs: print the delta */
    static long child_nvcsw_prev;
    long child_nvcsw = rc.ru_nvcsw - child_nvcsw_prev;
    child_nvcsw_prev = rc.ru_nvcsw;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "%s: executor failed (%d)\n", name, status);
        return 1;
    }
    rf_chan_stats_t me, ex;
    rf_chan_stats(ch, &me);
    rf_chan_peer_stats(ch, &ex);
    uint64_t msgs = me.records + ex.records;
    uint64_t sys = me.wakes + me.waits + ex.wakes + ex.waits;
    printf("%-10s spin=%-5u window=%-4u %8u req  %7.2f s  %10.0f msgs/s  %9.0f req/s", name, spin,
           window, count, el, (double)msgs / el, (double)count / el);
    if (lat) {
        qsort(lat, count, sizeof(double), cmp_double);
        printf("  rtt avg %.2f us p50 %.2f p99 %.2f", el / count * 1e6, lat[count / 2] * 1e6,
               lat[(size_t)(count * 0.99)] * 1e6);
    }
    printf("\n           doorbell syscalls/msg %.3f (wakes %llu+%llu, sleeps %llu+%llu), "
           "vol. ctx switches/msg %.3f\n",
           (double)sys / (double)msgs, (unsigned long long)me.wakes, (unsigned long long)ex.wakes,
           (unsigned long long)me.waits, (unsigned long long)ex.waits,
           (double)(ru1.ru_nvcsw - ru0.ru_nvcsw + child_nvcsw) / (double)msgs);
    free(lat);
    rf_chan_destroy(ch);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t pp = argc > 1 ? (uint32_t)atoi(argv[1]) : 200000;
    uint32_t st = argc > 2 ? (uint32_t)atoi(argv[2]) : 2000000;
    uint32_t win = argc > 3 ? (uint32_t)atoi(argv[3]) : 128;
    int bad = 0;

    bad |= run("ping-pong", pp, 1, 0);
    bad |= run("ping-pong", pp, 1, 2000);
    bad |= run("streaming", st, win, 0);
    bad |= run("streaming", st, win, 2000);
    return bad;
}
