/*
 * rf_io: starts and stops the responder: picks the backend (io_uring unless
 * it is unavailable or io.backend says otherwise, and says why in the log),
 * opens the listeners, and runs one thread per configured core, each with
 * its own loop, receive buffers, chunk pools and connections. A thread
 * blocks every signal: signals are the main thread's business.
 */
#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

#define RF_RBUF_SIZE_DEFAULT  16384
#define RF_RBUF_COUNT_DEFAULT 256
#define RF_POLL_MS            100

const char *rf_io_backend_name(int backend)
{
    switch (backend) {
    case RF_IO_URING:
        return "io_uring";
    case RF_IO_EPOLL:
        return "epoll";
    }
    return "auto";
}

int rf_io_backend_parse(const char *s)
{
    if (strcasecmp(s, "auto") == 0)
        return RF_IO_AUTO;
    if (strcasecmp(s, "io_uring") == 0 || strcasecmp(s, "uring") == 0)
        return RF_IO_URING;
    if (strcasecmp(s, "epoll") == 0)
        return RF_IO_EPOLL;
    return -EINVAL;
}

int rf_io_backend(const rf_io_t *io)
{
    return io->backend;
}

/*
 * Can this process use io_uring with what we need (a ring and a provided
 * buffer ring)? Returns 0 or the -errno that says why not: ENOSYS (old
 * kernel), EPERM (kernel.io_uring_disabled, seccomp), EINVAL...
 */
static int rf_io_probe_uring(void)
{
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0)
        return rc;
    size_t bytes = 8 * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) {
        rc = -errno;
    } else {
        struct io_uring_buf_reg reg;
        memset(&reg, 0, sizeof(reg));
        reg.ring_addr = (unsigned long)br;
        reg.ring_entries = 8;
        reg.bgid = 0;
        rc = io_uring_register_buf_ring(&ring, &reg, 0);
        munmap(br, bytes);
    }
    io_uring_queue_exit(&ring);
    return rc;
}

static int rf_io_pick_backend(rf_io_t *io)
{
    int want = io->conf->backend;
    if (want == RF_IO_EPOLL) {
        io->backend = RF_IO_EPOLL;
        rf_log(RF_LOG_NOTICE, "using the epoll backend (io.backend = epoll), %d responder thread%s",
               io->nthreads, io->nthreads == 1 ? "" : "s");
        return 0;
    }
    int rc = rf_io_probe_uring();
    if (rc == 0) {
        io->backend = RF_IO_URING;
        rf_log(RF_LOG_NOTICE, "using the io_uring backend, %d responder thread%s", io->nthreads,
               io->nthreads == 1 ? "" : "s");
        return 0;
    }
    const char *why = rc == -ENOSYS ? "the kernel has no io_uring"
                      : rc == -EPERM
                          ? "io_uring is not permitted (kernel.io_uring_disabled or seccomp)"
                          : "io_uring setup failed";
    if (want == RF_IO_URING) {
        rf_log(RF_LOG_ERROR, "io.backend = io_uring but %s: %s", why, strerror(-rc));
        return rc;
    }
    io->backend = RF_IO_EPOLL;
    rf_log(RF_LOG_NOTICE, "using the epoll backend: %s (%s), %d responder thread%s", why,
           strerror(-rc), io->nthreads, io->nthreads == 1 ? "" : "s");
    return 0;
}

static void *rf_thread_main(void *arg)
{
    rf_thread_t *t = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    char name[16];
    snprintf(name, sizeof(name), "responder %d", t->idx);
    pthread_setname_np(pthread_self(), name);
    if (t->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(t->cpu, &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (rc != 0)
            rf_log(RF_LOG_WARNING, "responder thread %d: cannot pin to cpu %d: %s", t->idx, t->cpu,
                   strerror(rc));
    }

    t->now_ns = rf_now_ns();
    int rc = t->be->init(t);
    if (rc == 0)
        rc = rf_disp_thread_init(t);
    if (rc == 0)
        rc = t->be->listen(t);
    __atomic_store_n(&t->started, rc < 0 ? rc : 1, __ATOMIC_RELEASE);
    if (rc < 0) {
        rf_disp_thread_fini(t);
        t->be->fini(t);
        return NULL;
    }

    int stopping = 0;
    uint64_t stop_deadline = 0;
    for (;;) {
        int timeout = (t->dirty || t->zombies) ? 0 : RF_POLL_MS;
        if (timeout && t->disp && rf_disp_idle(t))
            timeout = 0;
        rc = t->be->poll(t, timeout);
        if (rc < 0) {
            rf_log(RF_LOG_ALERT, "responder thread %d: event loop failed: %s", t->idx,
                   strerror(-rc));
            break;
        }
        rf_disp_run(t);
        rf_thread_after_events(t);
        if (__atomic_load_n(&t->drain, __ATOMIC_ACQUIRE) && !t->draining) {
            t->draining = 1;
            t->be->unlisten(t);
            rf_conn_drain(t);
            __atomic_store_n(&t->unlistened, 1, __ATOMIC_RELEASE);
        }
        if (t->draining)
            __atomic_store_n(&t->drained, t->nconns == 0, __ATOMIC_RELEASE);
        if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE) && !stopping) {
            stopping = 1;
            stop_deadline = t->now_ns + 2000000000u;
            for (uint32_t i = 0; i < t->nslots; i++)
                if (t->slots[i])
                    rf_conn_close(t, t->slots[i]);
        }
        if (stopping && (t->nconns == 0 || t->now_ns > stop_deadline))
            break;
    }
    rf_disp_thread_fini(t);
    rf_thread_after_events(t);
    t->be->fini(t);
    return NULL;
}

static int rf_thread_setup(rf_io_t *io, rf_thread_t *t, int idx)
{
    const rf_io_conf_t *conf = io->conf;
    memset(t, 0, sizeof(*t));
    t->magic = RF_THREAD_MAGIC;
    t->idx = idx;
    t->io = io;
    t->be = io->be;
    t->cpu = conf->cpu_list && conf->ncpu ? conf->cpu_list[idx % conf->ncpu] : -1;
    t->rbuf_size = conf->rbuf_size ? conf->rbuf_size : RF_RBUF_SIZE_DEFAULT;
    t->rbuf_count = conf->rbuf_count ? conf->rbuf_count : RF_RBUF_COUNT_DEFAULT;
    rf_arena_pool_init(&t->arena_pool, RF_ARENA_CHUNK_SIZE, 4096);

    size_t bytes = (size_t)t->rbuf_size * t->rbuf_count;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    t->rbuf_mem = mem;
    t->rbufs = rf_calloc(t->rbuf_count, sizeof(*t->rbufs));
    if (t->rbufs == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->rbuf_count; i++) {
        rf_rbuf_t *b = &t->rbufs[i];
        b->ref.release = rf_rbuf_release;
        b->t = t;
        b->data = t->rbuf_mem + (size_t)i * t->rbuf_size;
        b->bid = (uint16_t)i;
    }
    int nlists = conf->npools * RF_TIMER_KINDS;
    t->timers = rf_malloc((size_t)nlists * sizeof(*t->timers));
    if (t->timers == NULL)
        return -ENOMEM;
    for (int i = 0; i < nlists; i++)
        rf_link_init(&t->timers[i]);
    return 0;
}

static void rf_thread_teardown(rf_thread_t *t)
{
    if (t->rbuf_mem)
        munmap(t->rbuf_mem, (size_t)t->rbuf_size * t->rbuf_count);
    rf_free(t->rbufs);
    rf_free(t->timers);
    rf_free(t->slots);
    rf_free(t->free_slots);
    while (t->oblk_free) {
        rf_oblk_t *b = t->oblk_free;
        t->oblk_free = b->next;
        rf_free(b);
    }
    rf_arena_pool_drain(&t->arena_pool);
}

int rf_io_thread_count(const rf_io_conf_t *conf)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = conf->threads > 0 ? conf->threads : (int)((ncpu + 3) / 4);
    return n < 1 ? 1 : n;
}

int rf_io_board_create(const rf_io_conf_t *conf, const uint32_t *nslots, int fd, rf_board_t **out)
{
    int nthreads = rf_io_thread_count(conf);
    rf_board_pool_t *bp = rf_calloc(conf->npools ? (size_t)conf->npools : 1, sizeof(*bp));
    if (bp == NULL)
        return -ENOMEM;
    for (int i = 0; i < conf->npools; i++) {
        const rf_io_pool_t *p = &conf->pools[i];
        int php = p->handler == NULL;
        bp[i].name = p->name;
        bp[i].pm = rf_board_pm_name(p->pm) ? rf_board_pm_name(p->pm) : "static";
        bp[i].nslots = nslots ? nslots[i] : php ? 2 * p->max_children + (uint32_t)nthreads + 8 : 0;
        bp[i].listen_queue_len = php ? p->queue_max : 0;
    }
    int rc = rf_board_attach(out, bp, conf->npools, nthreads, (int64_t)time(NULL), fd);
    rf_free(bp);
    return rc;
}

int rf_io_start(rf_io_t **out, const rf_io_conf_t *conf)
{
    rf_io_t *io = rf_calloc(1, sizeof(*io));
    if (io == NULL)
        return -ENOMEM;
    io->conf_copy = *conf;
    io->conf = &io->conf_copy;
    /* auto: one responder thread per 4 cpus. A thread serves far more
     * requests than PHP executors can produce on a core, and a second one on
     * a small machine mostly takes cpu from the executors and the web server
     * (docs/benchmarks.md: 2 threads cost 1.9x the cpu per request of 1 on a
     * 2-cpu machine). */
    io->nthreads = rf_io_thread_count(conf);
    uint32_t count = conf->rbuf_count ? conf->rbuf_count : RF_RBUF_COUNT_DEFAULT;
    if (count & (count - 1) || count > 32768) {
        rf_log(RF_LOG_ERROR, "receive buffer count %u must be a power of two <= 32768", count);
        rf_free(io);
        return -EINVAL;
    }
    if (conf->max_connections)
        io->max_conns_per_thread =
            (conf->max_connections + (uint32_t)io->nthreads - 1) / (uint32_t)io->nthreads;

    int rc = rf_io_pick_backend(io);
    if (rc < 0) {
        rf_free(io);
        return rc;
    }
    io->be = io->backend == RF_IO_URING ? &rf_uring_ops : &rf_epoll_ops;

    if (conf->board == NULL) {
        rc = rf_io_board_create(conf, NULL, -1, &io->conf_copy.board);
        if (rc < 0) {
            rf_free(io);
            return rc;
        }
        io->board_owned = 1;
    }
    /* Thread i writes block i of every pool: the layouts must agree. */
    RF_ASSERT(rf_board_nthreads(io->conf->board) == io->nthreads &&
              rf_board_npools(io->conf->board) == conf->npools);

    rc = rf_listen_open_all(io);
    if (rc < 0)
        goto fail;

    io->threads = rf_calloc((size_t)io->nthreads, sizeof(*io->threads));
    if (io->threads == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < io->nthreads; i++) {
        rc = rf_thread_setup(io, &io->threads[i], i);
        if (rc < 0)
            goto fail;
    }
    for (int i = 0; i < io->nthreads; i++) {
        rc = -pthread_create(&io->threads[i].tid, NULL, rf_thread_main, &io->threads[i]);
        if (rc < 0) {
            io->nthreads = i;
            goto fail_started;
        }
    }
    for (int i = 0; i < io->nthreads; i++) {
        int st;
        while ((st = __atomic_load_n(&io->threads[i].started, __ATOMIC_ACQUIRE)) == 0)
            usleep(1000);
        if (st < 0) {
            rc = st;
            rf_log(RF_LOG_ERROR, "responder thread %d failed to start the %s backend: %s", i,
                   io->be->name, strerror(-st));
            goto fail_started;
        }
    }
    *out = io;
    return 0;

fail_started:
    rf_io_stop(io);
    return rc;
fail:
    if (io->threads)
        for (int i = 0; i < io->nthreads; i++)
            rf_thread_teardown(&io->threads[i]);
    rf_free(io->threads);
    rf_listen_close_all(io);
    if (io->board_owned)
        rf_board_destroy(io->conf_copy.board);
    rf_free(io);
    return rc;
}

void rf_io_drain(rf_io_t *io)
{
    for (int i = 0; i < io->nthreads; i++)
        __atomic_store_n(&io->threads[i].drain, 1, __ATOMIC_RELEASE);
    /* A thread sees the flag within RF_POLL_MS. The sockets are shut down
     * even if one does not answer: shutdown() refuses new connections
     * whatever accept the kernel still holds. */
    for (int i = 0; i < io->nthreads; i++)
        for (int ms = 0; ms < 1000; ms++) {
            if (__atomic_load_n(&io->threads[i].unlistened, __ATOMIC_ACQUIRE))
                break;
            usleep(1000);
        }
    rf_listen_shut(io);
}

int rf_io_listen_fds(const rf_io_t *io, int *fds, int max)
{
    return rf_listen_fds(io, fds, max);
}

int rf_io_drained(rf_io_t *io)
{
    for (int i = 0; i < io->nthreads; i++)
        if (!__atomic_load_n(&io->threads[i].drained, __ATOMIC_ACQUIRE))
            return 0;
    return 1;
}

void rf_io_stop(rf_io_t *io)
{
    for (int i = 0; i < io->nthreads; i++) {
        rf_thread_t *t = &io->threads[i];
        /* The loop wakes at least every RF_POLL_MS and sees the flag; no
         * cross-thread poke that could race with the thread's teardown. */
        __atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
    }
    for (int i = 0; i < io->nthreads; i++)
        pthread_join(io->threads[i].tid, NULL);
    for (int i = 0; i < io->nthreads; i++)
        rf_thread_teardown(&io->threads[i]);
    rf_free(io->threads);
    rf_listen_close_all(io);
    if (io->board_owned)
        rf_board_destroy(io->conf_copy.board);
    rf_free(io);
}
