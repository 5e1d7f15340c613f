/*
 * rf_board: the scoreboard shared by the master, the responder and the
 * executors (see rf_board.h): layout, slot bookkeeping, the seqlocked
 * copies readers take, and php-fpm's rules for showing a process.
 */
#include "rf_board.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_assert.h"
#include "rf_mem.h"

#define RF_BOARD_ALIGN 64
/* Read attempts before a record counts as busy: spins first (a writer's
 * section is a few hundred bytes of stores), then yields, so a writer that
 * was preempted mid-write gets the cpu back. */
#define RF_BOARD_SPINS  64
#define RF_BOARD_YIELDS 256

/* A thread's block of a pool: its own cache lines, no false sharing. */
typedef struct rf_board_block {
    uint32_t seq;
    uint32_t pad;
    rf_board_stats_t s;
} __attribute__((aligned(RF_BOARD_ALIGN))) rf_board_block_t;

typedef struct rf_board_lay {
    rf_board_pool_t conf;       /* strings owned */
    size_t blocks_off;          /* nthreads rf_board_block_t */
    size_t slots_off;           /* conf.nslots slots of slot_size */
    uint8_t *taken;             /* master: slots handed out */
    const char *_Atomic pm_now; /* NULL: conf.pm (rf_board_pool_set_pm) */
} rf_board_lay_t;

struct rf_board {
    uint32_t magic;
    int npools;
    int nthreads;
    size_t slot_size;
    uint8_t *base;
    size_t size;
    int fd; /* the memfd behind base (-1: anonymous memory) */
    rf_board_lay_t *pools;
};

static const char *const rf_board_states[] = {
    [RF_BOARD_IDLE] = "Idle",
    [RF_BOARD_READING] = "Reading headers",
    [RF_BOARD_INFO] = "Getting request information",
    [RF_BOARD_RUNNING] = "Running",
    [RF_BOARD_ENDING] = "Ending",
    [RF_BOARD_FINISHING] = "Finishing",
};

const char *rf_board_state_name(uint32_t state)
{
    if (state >= RF_ARRAY_SIZE(rf_board_states) || rf_board_states[state] == NULL)
        return "Unknown";
    return rf_board_states[state];
}

static size_t rf_board_round(size_t n)
{
    return (n + RF_BOARD_ALIGN - 1) & ~(size_t)(RF_BOARD_ALIGN - 1);
}

static char *rf_board_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = rf_malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

static void rf_board_free_handle(rf_board_t *b)
{
    if (b->pools)
        for (int i = 0; i < b->npools; i++) {
            rf_free((char *)b->pools[i].conf.name);
            rf_free((char *)b->pools[i].conf.pm);
            rf_free(b->pools[i].taken);
        }
    rf_free(b->pools);
    if (b->fd >= 0)
        close(b->fd);
    b->magic = 0;
    rf_free(b);
}

int rf_board_create(rf_board_t **out, const rf_board_pool_t *pools, int npools, int nthreads,
                    int64_t start_time)
{
    return rf_board_attach(out, pools, npools, nthreads, start_time, -1);
}

int rf_board_attach(rf_board_t **out, const rf_board_pool_t *pools, int npools, int nthreads,
                    int64_t start_time, int fd)
{
    if (out == NULL || npools < 0 || nthreads < 1 || (npools && pools == NULL)) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    rf_board_t *b = rf_calloc(1, sizeof(*b));
    if (b == NULL) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    b->fd = fd;
    b->magic = RF_BOARD_MAGIC;
    b->npools = npools;
    b->nthreads = nthreads;
    b->slot_size = rf_board_round(sizeof(rf_board_proc_t));
    b->pools = rf_calloc(npools ? (size_t)npools : 1, sizeof(*b->pools));
    if (b->pools == NULL) {
        rf_board_free_handle(b);
        return -ENOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < npools; i++) {
        rf_board_lay_t *l = &b->pools[i];
        l->conf = pools[i];
        l->conf.name = rf_board_strdup(pools[i].name);
        l->conf.pm = rf_board_strdup(pools[i].pm);
        l->conf.start_time = start_time;
        l->taken = rf_calloc(pools[i].nslots ? pools[i].nslots : 1, 1);
        if (!l->conf.name || !l->conf.pm || !l->taken) {
            rf_board_free_handle(b);
            return -ENOMEM;
        }
        l->blocks_off = off;
        off += (size_t)nthreads * sizeof(rf_board_block_t);
        l->slots_off = off;
        off += (size_t)pools[i].nslots * b->slot_size;
    }
    b->size = off ? off : RF_BOARD_ALIGN;
    if (b->fd >= 0) {
        /* Someone else's board: the layout must be the one it was made with. */
        struct stat st;
        if (fstat(b->fd, &st) < 0 || (size_t)st.st_size != b->size) {
            rf_board_free_handle(b);
            return -EINVAL;
        }
    } else {
        /* A memfd, so a re-executed master (reload) can map it again. */
        b->fd = memfd_create("ringfpm-board", MFD_CLOEXEC);
        if (b->fd >= 0 && ftruncate(b->fd, (off_t)b->size) < 0) {
            close(b->fd);
            b->fd = -1;
        }
    }
    void *m = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
                   b->fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, b->fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        rf_board_free_handle(b);
        return -e;
    }
    b->base = m; /* zero-filled: counters 0, slots free, sequence counts even */
    *out = b;
    return 0;
}

void rf_board_destroy(rf_board_t *b)
{
    if (b == NULL)
        return;
    RF_ASSERT(b->magic == RF_BOARD_MAGIC);
    munmap(b->base, b->size);
    rf_board_free_handle(b);
}

int rf_board_npools(const rf_board_t *b)
{
    return b ? b->npools : 0;
}

int rf_board_nthreads(const rf_board_t *b)
{
    return b ? b->nthreads : 0;
}

static const rf_board_lay_t *rf_board_lay(const rf_board_t *b, int pool)
{
    if (b == NULL || pool < 0 || pool >= b->npools)
        return NULL;
    RF_ASSERT(b->magic == RF_BOARD_MAGIC);
    return &b->pools[pool];
}

const char *rf_board_pm_name(int pm)
{
    static const char *const names[] = {NULL, "static", "dynamic", "ondemand"};
    return pm >= 1 && pm <= 3 ? names[pm] : NULL;
}

void rf_board_pool_set_pm(const rf_board_t *b, int pool, int pm)
{
    const char *name = rf_board_pm_name(pm);
    if (b == NULL || pool < 0 || pool >= b->npools || name == NULL)
        return;
    atomic_store_explicit(&b->pools[pool].pm_now, name, memory_order_release);
}

const char *rf_board_pool_pm(const rf_board_t *b, int pool)
{
    if (b == NULL || pool < 0 || pool >= b->npools)
        return NULL;
    const char *now = atomic_load_explicit(&b->pools[pool].pm_now, memory_order_acquire);
    return now ? now : b->pools[pool].conf.pm;
}

const rf_board_pool_t *rf_board_pool_get(const rf_board_t *b, int pool)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    return l ? &l->conf : NULL;
}

int rf_board_nslots(const rf_board_t *b, int pool)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    return l ? (int)l->conf.nslots : 0;
}

void rf_board_strset(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0)
        return;
    if (src == NULL)
        len = 0;
    if (len > cap - 1)
        len = cap - 1;
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
}

/* Copy n bytes at src under the seqlock seq into dst. 0 or -EBUSY. */
static int rf_board_copy(const uint32_t *seq, const void *src, void *dst, size_t n)
{
    for (int i = 0; i < RF_BOARD_SPINS + RF_BOARD_YIELDS; i++) {
        uint32_t s = rf_board_seq_read_begin(seq);
        if (!(s & 1u)) {
            memcpy(dst, src, n);
            if (!rf_board_seq_read_retry(seq, s))
                return 0;
        }
        if (i >= RF_BOARD_SPINS)
            sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else
            __builtin_ia32_pause();
#endif
    }
    return -EBUSY;
}

/* ---- responder threads --------------------------------------------------- */

static rf_board_block_t *rf_board_block(const rf_board_t *b, const rf_board_lay_t *l, int thread)
{
    return (rf_board_block_t *)(b->base + l->blocks_off) + thread;
}

void rf_board_stats_put(rf_board_t *b, int pool, int thread, const rf_board_stats_t *s)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    if (l == NULL || thread < 0 || thread >= b->nthreads)
        return;
    rf_board_block_t *k = rf_board_block(b, l, thread);
    rf_board_seq_write_begin(&k->seq);
    k->s = *s;
    rf_board_seq_write_end(&k->seq);
}

int rf_board_stats_get(const rf_board_t *b, int pool, rf_board_stats_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    if (l == NULL)
        return -EINVAL;
    int rc = 0;
    for (int i = 0; i < b->nthreads; i++) {
        const rf_board_block_t *k = rf_board_block(b, l, i);
        rf_board_stats_t s;
        if (rf_board_copy(&k->seq, &k->s, &s, sizeof(s)) < 0) {
            rc = -EBUSY;
            continue;
        }
        sum->accepted_conn += s.accepted_conn;
        sum->listen_queue += s.listen_queue;
        sum->max_listen_queue += s.max_listen_queue;
        sum->idle += s.idle;
        sum->active += s.active;
        sum->total += s.total;
        sum->max_active += s.max_active;
        sum->max_children_reached += s.max_children_reached;
        sum->slow_requests += s.slow_requests;
    }
    return rc;
}

/* ---- process slots ------------------------------------------------------- */

static rf_board_proc_t *rf_board_proc_at(const rf_board_t *b, const rf_board_lay_t *l, int slot)
{
    if (slot < 0 || (uint32_t)slot >= l->conf.nslots)
        return NULL;
    return (rf_board_proc_t *)(b->base + l->slots_off + (size_t)slot * b->slot_size);
}

rf_board_proc_t *rf_board_slot(rf_board_t *b, int pool, int slot)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    return l ? rf_board_proc_at(b, l, slot) : NULL;
}

int rf_board_slot_alloc(rf_board_t *b, int pool, int64_t start_time)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    if (l == NULL)
        return -EINVAL;
    for (uint32_t i = 0; i < l->conf.nslots; i++) {
        if (l->taken[i])
            continue;
        l->taken[i] = 1;
        rf_board_proc_t *p = rf_board_proc_at(b, l, (int)i);
        rf_board_seq_write_begin(&p->seq);
        p->used = 1;
        p->pid = 0;
        p->state = RF_BOARD_IDLE;
        p->start_time = start_time;
        p->requests = 0;
        p->req_start_us = p->req_duration_us = p->req_cpu_us = p->req_memory = 0;
        p->content_length = 0;
        p->method[0] = p->uri[0] = p->query[0] = p->user[0] = p->script[0] = '\0';
        rf_board_seq_write_end(&p->seq);
        return (int)i;
    }
    return -ENOSPC;
}

int rf_board_slot_adopt(rf_board_t *b, int pool, int slot)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    if (l == NULL || rf_board_proc_at(b, l, slot) == NULL)
        return -EINVAL;
    l->taken[slot] = 1;
    return 0;
}

int rf_board_fd(const rf_board_t *b)
{
    return b->fd;
}

void rf_board_slot_set_pid(rf_board_t *b, int pool, int slot, int pid)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    rf_board_proc_t *p = l ? rf_board_proc_at(b, l, slot) : NULL;
    if (p == NULL || !l->taken[slot])
        return;
    rf_board_seq_write_begin(&p->seq);
    p->pid = pid;
    rf_board_seq_write_end(&p->seq);
}

void rf_board_slot_free(rf_board_t *b, int pool, int slot)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    rf_board_proc_t *p = l ? rf_board_proc_at(b, l, slot) : NULL;
    if (p == NULL || !l->taken[slot])
        return;
    rf_board_seq_write_begin(&p->seq);
    p->used = 0;
    p->pid = 0;
    rf_board_seq_write_end(&p->seq);
    l->taken[slot] = 0;
}

int rf_board_proc_read(const rf_board_t *b, int pool, int slot, rf_board_proc_t *out)
{
    const rf_board_lay_t *l = rf_board_lay(b, pool);
    const rf_board_proc_t *p = l ? rf_board_proc_at(b, l, slot) : NULL;
    if (p == NULL)
        return -EINVAL;
    if (rf_board_copy(&p->seq, p, out, sizeof(*out)) < 0)
        return -EBUSY;
    out->method[sizeof(out->method) - 1] = '\0';
    out->uri[sizeof(out->uri) - 1] = '\0';
    out->query[sizeof(out->query) - 1] = '\0';
    out->user[sizeof(out->user) - 1] = '\0';
    out->script[sizeof(out->script) - 1] = '\0';
    return out->used && out->pid > 0 ? 1 : 0;
}

void rf_board_proc_view(const rf_board_proc_t *p, int64_t now, uint64_t now_us,
                        rf_board_proc_view_t *v)
{
    int idle = p->state == RF_BOARD_IDLE;
    memset(v, 0, sizeof(*v));
    v->pid = p->pid;
    v->state = rf_board_state_name(p->state);
    v->start_time = p->start_time;
    v->start_since = now > p->start_time ? now - p->start_time : 0;
    v->requests = p->requests;
    if (idle)
        v->request_duration = p->req_duration_us;
    else
        v->request_duration = now_us > p->req_start_us ? now_us - p->req_start_us : 0;
    v->method = p->method[0] ? p->method : "-";
    v->uri = p->uri;
    v->query = p->query;
    v->content_length = p->content_length;
    v->user = p->user[0] ? p->user : "-";
    v->script = p->script[0] ? p->script : "-";
    if (idle && p->req_duration_us)
        v->last_request_cpu = (double)p->req_cpu_us / (double)p->req_duration_us * 100.0;
    v->last_request_memory = idle ? p->req_memory : 0;
}
