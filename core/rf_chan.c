/*
 * rf_chan: shared-memory executor channel (see rf_chan.h for the contract).
 *
 * Mapping layout (one sealed memfd):
 *   [0, 4096)                 header: magic, index words and doorbells, each
 *                             on its own cache line, executor's stats
 *   [4096, +req_size)         request ring
 *   [.., +resp_size)          response ring
 *
 * Both rings carry records: a 32-byte header then the payload, padded to
 * 32 bytes, so a header always fits before the end of the ring. A record
 * never wraps: when it does not fit before the end, the writer fills the
 * tail with a PAD record. Indices are free-running uint32 byte positions;
 * ring sizes are powers of two, so "prod - cons" is the fill level modulo
 * 2^32 and must never exceed the ring size. A record is at most half the
 * ring, so a writer waiting for room always gets it once the reader drains.
 *
 * Memory: the rings are sized for the largest record (2 MiB each way by
 * default, for 1 MiB of params), but pages are only allocated when a record
 * reaches them (no MAP_POPULATE), writers start over at offset 0 whenever
 * they can (ring_put), and an idle executor gives back the response-ring
 * pages a large response touched (rf_chan_exec_trim). A channel then costs
 * the pages its normal traffic uses, tens of KiB.
 *
 * Doorbell protocol (per doorbell word, 0 = awake, else the reason the
 * owner sleeps: 1 = waiting for records, 2 = waiting for room):
 *   sleeper: store reason (seq_cst); re-check its condition;
 *            FUTEX_WAIT(word, reason)
 *   waker:   publish index (release); seq_cst fence; if word == the reason
 *            this publication satisfies and cmpxchg(word, reason -> 0)
 *            succeeds, FUTEX_WAKE
 * Either the sleeper sees the new index or the waker sees the 1 (Dekker), so
 * no wakeup is lost, and the cmpxchg makes at most one wake per sleep.
 */
#include "rf_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rf_assert.h"

#define RF_CHAN_MAGIC     0x4e414843u /* "CHAN" */
#define RF_CHAN_SHM_MAGIC 0x314e414843465252ull
#define RF_CHAN_HDR_SIZE  4096u
#define RF_CHAN_REC_ALIGN 32u
#define RF_CHAN_DEF_RING  (256u * 1024u)
#define RF_CHAN_MIN_RING  4096u
#define RF_CHAN_MAX_RING  (1u << 30)
#define RF_CHAN_GUARD     4096u
#define RF_CHAN_PAGE      4096u
/* Response-ring pages beyond the first RF_CHAN_KEEP bytes that a large
 * response touched are given back after the executor has waited this long
 * for its next request (rf_chan_exec_wait). */
#define RF_CHAN_KEEP    (64u << 10)
#define RF_CHAN_TRIM_MS 1000

enum { RF_CHAN_ROLE_NONE, RF_CHAN_ROLE_RESP, RF_CHAN_ROLE_EXEC };

/*
 * Doorbell word values: why its owner sleeps. The executor says whether it
 * waits for a request or for room in the response ring, so the responder's
 * release does not wake an executor that only waits for work.
 */
enum { RF_CHAN_AWAKE = 0, RF_CHAN_WAIT_DATA = 1, RF_CHAN_WAIT_ROOM = 2 };

/* Record header as stored in a ring; read back as four 64-bit words. */
typedef struct rf_chan_rec {
    uint32_t len; /* payload bytes, without padding */
    uint16_t type;
    uint16_t flags;
    uint32_t slot;
    uint32_t gen;
    uint32_t arg0;
    uint32_t arg1;
    uint64_t arg2;
} rf_chan_rec_t;

_Static_assert(sizeof(rf_chan_rec_t) == RF_CHAN_REC_ALIGN, "record header is 32 bytes");

#define RF_CACHELINE _Alignas(64)

/* The shared header. Comments name the only process that writes a field. */
typedef struct rf_chan_shm {
    uint64_t magic;                              /* creator */
    uint32_t req_size, resp_size;                /* creator; informational, never trusted */
    RF_CACHELINE _Atomic uint32_t req_prod;      /* responder */
    RF_CACHELINE _Atomic uint32_t req_cons;      /* executor */
    RF_CACHELINE _Atomic uint32_t resp_prod;     /* executor */
    RF_CACHELINE _Atomic uint32_t resp_cons;     /* responder */
    RF_CACHELINE _Atomic uint32_t exec_bell;     /* executor sleeps here */
    RF_CACHELINE _Atomic uint32_t resp_bell;     /* responder sleeps here */
    RF_CACHELINE _Atomic uint64_t exec_stats[4]; /* executor, untrusted */
} rf_chan_shm_t;

_Static_assert(sizeof(rf_chan_shm_t) <= RF_CHAN_HDR_SIZE, "header fits its page");

/* One side's private view of one ring. */
typedef struct rf_chan_ring {
    uint8_t *base;
    uint32_t size, mask, max_rec;
    _Atomic uint32_t *prod, *cons;
    uint32_t pos;  /* writer: next write position; reader: read cursor */
    uint32_t rel;  /* reader: position last released to the writer */
    uint32_t peek; /* reader: bytes of the record last peeked at pos, 0 = none */
    uint32_t hwm;  /* writer: end of the furthest record written since the last trim */
    int eager;     /* writer: rewinds with records in flight too (ring_put) */
} rf_chan_ring_t;

struct rf_chan {
    uint32_t magic;
    int role;
    int memfd, efd;
    uint8_t *map;
    size_t map_len;
    rf_chan_shm_t *shm;
    rf_chan_ring_t req, resp;
    uint32_t spin;
    int broken;
    int armed;      /* responder: announced sleep, not yet disarmed */
    int defer_wake; /* responder: leave the executor's FUTEX_WAKE to the caller */
    int no_drain;   /* responder: its eventfd watch is edge-like, no read needed */
    int wake_due;   /* ... and one is due */
    rf_chan_stats_t st;
};

static uint32_t rec_bytes(uint32_t len)
{
    return RF_CHAN_REC_ALIGN + ((len + RF_CHAN_REC_ALIGN - 1) & ~(RF_CHAN_REC_ALIGN - 1));
}

uint32_t rf_chan_max_payload(uint32_t ring_size)
{
    return ring_size / 2 - RF_CHAN_REC_ALIGN;
}

static int opts_check(const rf_chan_opts_t *in, rf_chan_opts_t *o)
{
    static const rf_chan_opts_t def;

    *o = in ? *in : def;
    if (!o->req_ring_size)
        o->req_ring_size = RF_CHAN_DEF_RING;
    if (!o->resp_ring_size)
        o->resp_ring_size = RF_CHAN_DEF_RING;
    uint32_t s[2] = {o->req_ring_size, o->resp_ring_size};
    for (int i = 0; i < 2; i++)
        if (s[i] < RF_CHAN_MIN_RING || s[i] > RF_CHAN_MAX_RING || (s[i] & (s[i] - 1)))
            return -EINVAL;
    return 0;
}

static size_t map_len_of(const rf_chan_opts_t *o)
{
    return (size_t)RF_CHAN_HDR_SIZE + o->req_ring_size + o->resp_ring_size;
}

static void ring_init(rf_chan_ring_t *r, uint8_t *base, uint32_t size, _Atomic uint32_t *prod,
                      _Atomic uint32_t *cons)
{
    memset(r, 0, sizeof(*r));
    r->base = base;
    r->size = size;
    r->mask = size - 1;
    r->max_rec = size / 2;
    r->prod = prod;
    r->cons = cons;
}

static int chan_new(int memfd, int efd, const rf_chan_opts_t *o, rf_chan_t **out)
{
    rf_chan_t *ch = calloc(1, sizeof(*ch));
    size_t len = map_len_of(o);

    if (!ch)
        return -ENOMEM;
    /* A PROT_NONE guard page after the mapping turns any overread into a
     * fault at once instead of a read of a neighbouring mapping. */
    void *g = mmap(NULL, len + RF_CHAN_GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g == MAP_FAILED) {
        int e = -errno;
        free(ch);
        return e;
    }
    /* Not MAP_POPULATE: that allocated every page of both rings (4 MiB
     * with the default 2 MiB rings) at once, in the responder's RSS and in
     * shared memory, while traffic keeps to the first pages (ring_put's
     * rewind). A page is allocated the first time a record reaches it. */
    void *p = mmap(g, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        munmap(g, len + RF_CHAN_GUARD);
        free(ch);
        return e;
    }
    ch->magic = RF_CHAN_MAGIC;
    ch->memfd = memfd;
    ch->efd = efd;
    ch->map = p;
    ch->map_len = len;
    ch->shm = p;
    ch->spin = o->spin;
    ring_init(&ch->req, ch->map + RF_CHAN_HDR_SIZE, o->req_ring_size, &ch->shm->req_prod,
              &ch->shm->req_cons);
    ring_init(&ch->resp, ch->map + RF_CHAN_HDR_SIZE + o->req_ring_size, o->resp_ring_size,
              &ch->shm->resp_prod, &ch->shm->resp_cons);
    ch->req.eager = 1;
    *out = ch;
    return 0;
}

int rf_chan_create(const rf_chan_opts_t *opts, rf_chan_t **out)
{
    rf_chan_opts_t o;
    int r = opts_check(opts, &o), fd, efd = -1;

    if (r < 0)
        return r;
    fd = memfd_create("rf_chan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* Sealed so an executor that kept the fd cannot shrink the file and turn
     * the responder's reads into SIGBUS. */
    if (ftruncate(fd, (off_t)map_len_of(&o)) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        r = -errno;
        goto fail;
    }
    if (o.resp_eventfd) {
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) {
            r = -errno;
            goto fail;
        }
    }
    r = chan_new(fd, efd, &o, out);
    if (r < 0)
        goto fail;
    (*out)->shm->magic = RF_CHAN_SHM_MAGIC;
    (*out)->shm->req_size = o.req_ring_size;
    (*out)->shm->resp_size = o.resp_ring_size;
    return 0;
fail:
    if (efd >= 0)
        close(efd);
    close(fd);
    return r;
}

int rf_chan_open(int memfd, int efd, const rf_chan_opts_t *opts, rf_chan_t **out)
{
    rf_chan_opts_t o;
    struct stat st;
    int r = opts_check(opts, &o), fd, efd2 = -1, seals;

    if (r < 0)
        return r;
    if (!!o.resp_eventfd != (efd >= 0))
        return -EINVAL;
    if (fstat(memfd, &st) < 0)
        return -errno;
    seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    if ((size_t)st.st_size < map_len_of(&o) || !(seals & F_SEAL_SHRINK))
        return -EINVAL;
    fd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (efd >= 0) {
        efd2 = fcntl(efd, F_DUPFD_CLOEXEC, 0);
        if (efd2 < 0) {
            r = -errno;
            close(fd);
            return r;
        }
    }
    r = chan_new(fd, efd2, &o, out);
    if (r < 0) {
        if (efd2 >= 0)
            close(efd2);
        close(fd);
    }
    return r;
}

void rf_chan_destroy(rf_chan_t *ch)
{
    if (!ch)
        return;
    RF_ASSERT(ch->magic == RF_CHAN_MAGIC);
    munmap(ch->map, ch->map_len + RF_CHAN_GUARD);
    if (ch->memfd >= 0)
        close(ch->memfd);
    if (ch->efd >= 0)
        close(ch->efd);
    ch->magic = 0;
    free(ch);
}

int rf_chan_fd(const rf_chan_t *ch)
{
    return ch->memfd;
}

int rf_chan_eventfd(const rf_chan_t *ch)
{
    return ch->efd;
}

void rf_chan_close_fd(rf_chan_t *ch)
{
    RF_ASSERT(ch->magic == RF_CHAN_MAGIC);
    if (ch->memfd >= 0)
        close(ch->memfd);
    ch->memfd = -1;
}

void rf_chan_layout(const rf_chan_t *ch, rf_chan_layout_t *out)
{
    out->map = ch->map;
    out->map_len = ch->map_len;
    out->req_ring = ch->req.base;
    out->req_size = ch->req.size;
    out->resp_ring = ch->resp.base;
    out->resp_size = ch->resp.size;
    out->req_prod = (uint32_t *)&ch->shm->req_prod;
    out->req_cons = (uint32_t *)&ch->shm->req_cons;
    out->resp_prod = (uint32_t *)&ch->shm->resp_prod;
    out->resp_cons = (uint32_t *)&ch->shm->resp_cons;
    out->exec_bell = (uint32_t *)&ch->shm->exec_bell;
    out->resp_bell = (uint32_t *)&ch->shm->resp_bell;
}

void rf_chan_stats(const rf_chan_t *ch, rf_chan_stats_t *out)
{
    *out = ch->st;
}

void rf_chan_peer_stats(const rf_chan_t *ch, rf_chan_stats_t *out)
{
    out->records = atomic_load_explicit(&ch->shm->exec_stats[0], memory_order_relaxed);
    out->wakes = atomic_load_explicit(&ch->shm->exec_stats[1], memory_order_relaxed);
    out->waits = atomic_load_explicit(&ch->shm->exec_stats[2], memory_order_relaxed);
    out->full = atomic_load_explicit(&ch->shm->exec_stats[3], memory_order_relaxed);
}

static void take_role(rf_chan_t *ch, int role)
{
    RF_ASSERT(ch->magic == RF_CHAN_MAGIC);
    if (ch->role == RF_CHAN_ROLE_NONE)
        ch->role = role;
    RF_ASSERT(ch->role == role);
}

static void publish_stats(rf_chan_t *ch)
{
    if (ch->role != RF_CHAN_ROLE_EXEC)
        return;
    atomic_store_explicit(&ch->shm->exec_stats[0], ch->st.records, memory_order_relaxed);
    atomic_store_explicit(&ch->shm->exec_stats[1], ch->st.wakes, memory_order_relaxed);
    atomic_store_explicit(&ch->shm->exec_stats[2], ch->st.waits, memory_order_relaxed);
    atomic_store_explicit(&ch->shm->exec_stats[3], ch->st.full, memory_order_relaxed);
}

/* ---- doorbells ---- */

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

static void bell_ring(rf_chan_t *ch, _Atomic uint32_t *bell, uint32_t want, int efd)
{
    uint32_t v = want;

    /* Orders the index just published before the look at the bell. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(bell, memory_order_relaxed) != want)
        return;
    if (!atomic_compare_exchange_strong_explicit(bell, &v, RF_CHAN_AWAKE, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    if (efd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(efd, &one, sizeof(one));
        (void)n; /* EAGAIN: the counter is saturated, the reader wakes anyway */
    } else if (ch->defer_wake) {
        ch->wake_due = 1; /* the caller batches it (io_uring FUTEX_WAKE) */
    } else {
        futex(bell, FUTEX_WAKE, INT_MAX, NULL);
    }
    ch->st.wakes++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps on bell until ready(ch, arg) holds. Returns 1, 0 on timeout, -EINTR. */
static int bell_wait(rf_chan_t *ch, _Atomic uint32_t *bell, uint32_t reason,
                     bool (*ready)(rf_chan_t *, uint32_t), uint32_t arg, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

    for (uint32_t i = 0; i < ch->spin; i++) {
        if (ready(ch, arg))
            return 1;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        atomic_signal_fence(memory_order_seq_cst);
#endif
    }
    for (;;) {
        struct timespec ts, *tsp = NULL;

        if (ready(ch, arg))
            return 1;
        atomic_store_explicit(bell, reason, memory_order_seq_cst);
        ch->st.waits++;
        if (ready(ch, arg)) {
            atomic_store_explicit(bell, 0, memory_order_relaxed);
            return 1;
        }
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                atomic_store_explicit(bell, 0, memory_order_relaxed);
                return 0;
            }
            ts.tv_sec = left / 1000;
            ts.tv_nsec = (left % 1000) * 1000000;
            tsp = &ts;
        }
        publish_stats(ch);
        long r = futex(bell, FUTEX_WAIT, reason, tsp);
        int e = r < 0 ? errno : 0;
        atomic_store_explicit(bell, 0, memory_order_relaxed);
        if (e == EINTR)
            return -EINTR;
    }
}

/* ---- rings ---- */

/*
 * Checks the peer's cons against the writer's position and returns free
 * bytes, or -EPROTO when the peer published nonsense.
 */
#define RF_CHAN_REWIND (16u << 10)

static int64_t ring_free(const rf_chan_ring_t *r)
{
    uint32_t cons = atomic_load_explicit(r->cons, memory_order_acquire);
    uint32_t used = r->pos - cons;

    if (used > r->size || (used & (RF_CHAN_REC_ALIGN - 1)))
        return -EPROTO;
    return r->size - used;
}

/* Bytes a record of rec bytes needs at the current position (with PAD). */
static uint32_t ring_need(const rf_chan_ring_t *r, uint32_t rec)
{
    uint32_t to_end = r->size - (r->pos & r->mask);
    return rec <= to_end ? rec : to_end + rec;
}

static void ring_store_hdr(uint8_t *dst, const rf_chan_rec_t *h)
{
    memcpy(dst, h, sizeof(*h));
}

/*
 * Writes one record (header + gathered payload of len bytes) and publishes
 * it. Returns 0, -EAGAIN when there is no room now, -EPROTO.
 */
static int ring_put(rf_chan_ring_t *r, rf_chan_rec_t *h, const struct iovec *iov, int iovcnt)
{
    uint32_t rec = rec_bytes(h->len);
    int64_t fr = ring_free(r);

    RF_ASSERT(rec <= r->max_rec);
    if (fr < 0)
        return (int)fr;
    if (ring_need(r, rec) > (uint64_t)fr)
        return -EAGAIN;
    uint32_t off = r->pos & r->mask, to_end = r->size - off;
    uint32_t used = r->size - (uint32_t)fr, cons_off = (r->pos - used) & r->mask;
    /* Once the cursor is past RF_CHAN_REWIND, the writer starts over at the
     * ring's beginning when the room the reader has freed there holds this
     * record and as much again as is still unread ([cons_off, off)): an
     * empty ring always, so traffic stays in the first pages and a big ring
     * costs memory only when a large record or a stalled reader needs it.
     * The request ring also while records are in flight: it always has a
     * pipelined request behind the running one, so it is never empty and
     * its cursor would walk the whole ring. Not the response ring: its
     * reader empties it at each END, and a rewind with records in flight
     * leaves the writer only the room at the head until the reader passes
     * the PAD, so a long response would fill it and wait (two wakeups)
     * more often. Asking for room for the unread bytes again keeps the
     * request ring from shrinking to a sliver at its head. */
    int rewind = off >= RF_CHAN_REWIND && cons_off <= off && used + rec <= cons_off &&
                 (used == 0 || r->eager);
    if (rec > to_end || rewind) {
        rf_chan_rec_t pad = {.len = to_end - RF_CHAN_REC_ALIGN, .type = RF_CHAN_PAD};
        ring_store_hdr(r->base + off, &pad);
        if (off + RF_CHAN_REC_ALIGN > r->hwm)
            r->hwm = off + RF_CHAN_REC_ALIGN;
        r->pos += to_end;
        off = 0;
    }
    ring_store_hdr(r->base + off, h);
    uint8_t *p = r->base + off + RF_CHAN_REC_ALIGN;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    r->pos += rec;
    if (off + rec > r->hwm)
        r->hwm = off + rec;
    atomic_store_explicit(r->prod, r->pos, memory_order_release);
    return 0;
}

/* Copies a header out of shared memory exactly once (no re-reads). */
static void ring_load_hdr(const uint8_t *src, rf_chan_rec_t *h)
{
    uint64_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = __atomic_load_n((const uint64_t *)(const void *)(src + 8 * i), __ATOMIC_RELAXED);
    memcpy(h, w, sizeof(*h));
}

/* Which record types may appear in a ring read by `role`. */
static bool type_ok(int role, uint32_t type)
{
    if (role == RF_CHAN_ROLE_RESP)
        return type == RF_CHAN_STDOUT || type == RF_CHAN_STDERR || type == RF_CHAN_FLUSH ||
               type == RF_CHAN_END || type == RF_CHAN_DONE;
    return type == RF_CHAN_REQUEST || type == RF_CHAN_ABORT;
}

/*
 * Reads and validates the record at the read cursor, skipping PAD. Returns
 * 1 with *m, 0 when empty, -EPROTO. Everything read from shared memory is
 * copied first and checked before use.
 */
static int ring_peek(rf_chan_ring_t *r, int role, rf_chan_msg_t *m)
{
    uint32_t prod = atomic_load_explicit(r->prod, memory_order_acquire);
    uint32_t filled = prod - r->rel, consumed = r->pos - r->rel;

    if (filled > r->size || (filled & (RF_CHAN_REC_ALIGN - 1)) || consumed > filled)
        return -EPROTO;
    for (int pads = 0;; pads++) {
        uint32_t avail = prod - r->pos, off = r->pos & r->mask, to_end = r->size - off;
        rf_chan_rec_t h;

        if (avail == 0)
            return 0;
        ring_load_hdr(r->base + off, &h);
        if (h.type == RF_CHAN_PAD) {
            /* A PAD fills exactly the tail and never starts the ring. */
            if (pads || off == 0 || h.len != to_end - RF_CHAN_REC_ALIGN || avail < to_end)
                return -EPROTO;
            r->pos += to_end;
            continue;
        }
        if (!type_ok(role, h.type) || h.len > r->max_rec - RF_CHAN_REC_ALIGN)
            return -EPROTO;
        uint32_t rec = rec_bytes(h.len);
        if (rec > to_end || rec > avail)
            return -EPROTO;
        switch (h.type) {
        case RF_CHAN_REQUEST:
            if ((h.flags & ~RF_CHAN_F_KNOWN) || h.arg0 > h.len)
                return -EPROTO;
            if (!(h.flags & RF_CHAN_F_BODY_FD) && h.arg1 != h.len - h.arg0)
                return -EPROTO;
            if ((h.flags & RF_CHAN_F_BODY_FD) && h.arg0 != h.len)
                return -EPROTO;
            break;
        case RF_CHAN_STDOUT:
        case RF_CHAN_STDERR:
            if (h.flags)
                return -EPROTO;
            break;
        case RF_CHAN_END:
            if ((h.flags & ~RF_CHAN_F_MORE) || h.len)
                return -EPROTO;
            break;
        default: /* ABORT, FLUSH, DONE: no payload, no flags */
            if (h.flags || h.len)
                return -EPROTO;
            break;
        }
        m->type = h.type;
        m->flags = h.flags;
        m->slot = h.slot;
        m->gen = h.gen;
        m->arg0 = h.arg0;
        m->arg1 = h.arg1;
        m->arg2 = h.arg2;
        m->data = r->base + off + RF_CHAN_REC_ALIGN;
        m->len = h.len;
        r->peek = rec;
        return 1;
    }
}

static void ring_release(rf_chan_ring_t *r)
{
    r->rel = r->pos;
    atomic_store_explicit(r->cons, r->pos, memory_order_release);
}

/* ---- responder side ---- */

static int resp_enter(rf_chan_t *ch)
{
    take_role(ch, RF_CHAN_ROLE_RESP);
    return ch->broken ? -EPROTO : 0;
}

static int resp_fail(rf_chan_t *ch, int r)
{
    if (r == -EPROTO)
        ch->broken = 1;
    return r;
}

static int resp_put(rf_chan_t *ch, rf_chan_rec_t *h, const struct iovec *iov, int iovcnt)
{
    int r = ring_put(&ch->req, h, iov, iovcnt);

    if (r == -EAGAIN) {
        ch->st.full++;
        return -ENOBUFS;
    }
    if (r < 0)
        return resp_fail(ch, r);
    ch->st.records++;
    bell_ring(ch, &ch->shm->exec_bell, RF_CHAN_WAIT_DATA, -1);
    return 0;
}

int rf_chan_resp_send_request(rf_chan_t *ch, const rf_chan_req_t *req, const struct iovec *iov,
                              int iovcnt)
{
    int r = resp_enter(ch);
    uint64_t total = 0, want;

    if (r < 0)
        return r;
    if (iovcnt < 0 || (iovcnt > 0 && !iov) || (req->flags & ~RF_CHAN_F_KNOWN))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    want = (uint64_t)req->params_len + ((req->flags & RF_CHAN_F_BODY_FD) ? 0 : req->body_len);
    if (total != want)
        return -EINVAL;
    if (total > rf_chan_max_payload(ch->req.size))
        return -E2BIG;
    rf_chan_rec_t h = {
        .len = (uint32_t)total,
        .type = RF_CHAN_REQUEST,
        .flags = (uint16_t)req->flags,
        .slot = req->slot,
        .gen = req->gen,
        .arg0 = req->params_len,
        .arg1 = req->body_len,
        .arg2 = req->t_queued_ns,
    };
    return resp_put(ch, &h, iov, iovcnt);
}

int rf_chan_resp_send_abort(rf_chan_t *ch, uint32_t slot, uint32_t gen)
{
    int r = resp_enter(ch);

    if (r < 0)
        return r;
    rf_chan_rec_t h = {.type = RF_CHAN_ABORT, .slot = slot, .gen = gen};
    return resp_put(ch, &h, NULL, 0);
}

int rf_chan_resp_peek(rf_chan_t *ch, rf_chan_msg_t *m)
{
    int r = resp_enter(ch);

    if (r < 0)
        return r;
    return resp_fail(ch, ring_peek(&ch->resp, RF_CHAN_ROLE_RESP, m));
}

int rf_chan_resp_next(rf_chan_t *ch, rf_chan_msg_t *m)
{
    int r = rf_chan_resp_peek(ch, m);

    if (r == 1)
        ch->resp.pos += ch->resp.peek;
    return r;
}

int rf_chan_resp_release(rf_chan_t *ch)
{
    int r = resp_enter(ch);

    if (r < 0)
        return r;
    if (ch->resp.rel == ch->resp.pos)
        return 0;
    ring_release(&ch->resp);
    bell_ring(ch, &ch->shm->exec_bell, RF_CHAN_WAIT_ROOM, -1);
    return 0;
}

/* A response is readable (possibly a bad one: the reader reports that). */
static bool resp_ready(rf_chan_t *ch, uint32_t unused)
{
    return atomic_load_explicit(ch->resp.prod, memory_order_seq_cst) != ch->resp.pos;
}

int rf_chan_resp_arm(rf_chan_t *ch, uint32_t **uaddr, uint32_t *val)
{
    int r = resp_enter(ch);

    if (r < 0)
        return r;
    atomic_store_explicit(&ch->shm->resp_bell, RF_CHAN_WAIT_DATA, memory_order_seq_cst);
    ch->st.waits++;
    ch->armed = 1;
    if (resp_ready(ch, 0)) {
        rf_chan_resp_disarm(ch); /* drains the eventfd if the executor rang meanwhile */
        return 1;
    }
    if (uaddr)
        *uaddr = (uint32_t *)&ch->shm->resp_bell;
    if (val)
        *val = RF_CHAN_WAIT_DATA;
    return 0;
}

void rf_chan_resp_drain_bell(rf_chan_t *ch, int on)
{
    take_role(ch, RF_CHAN_ROLE_RESP);
    ch->no_drain = !on;
}

void rf_chan_resp_defer_wakes(rf_chan_t *ch, int on)
{
    take_role(ch, RF_CHAN_ROLE_RESP);
    ch->defer_wake = on;
}

uint32_t *rf_chan_resp_wake_due(rf_chan_t *ch)
{
    if (!ch->wake_due)
        return NULL;
    ch->wake_due = 0;
    return (uint32_t *)&ch->shm->exec_bell;
}

void rf_chan_resp_disarm(rf_chan_t *ch)
{
    take_role(ch, RF_CHAN_ROLE_RESP);
    /* The executor turns our announcement into AWAKE when it rings: only
     * then is there an eventfd count to drain (no read(2) that fails with
     * EAGAIN on every turn of the loop). The peer may write any value
     * here; a wrong one costs at most a read. */
    uint32_t was = atomic_exchange_explicit(&ch->shm->resp_bell, 0, memory_order_acq_rel);
    int rang = ch->armed && was != RF_CHAN_WAIT_DATA;
    ch->armed = 0;
    if (ch->efd >= 0 && rang && !ch->no_drain) {
        uint64_t v;
        ssize_t n = read(ch->efd, &v, sizeof(v));
        (void)n;
    }
}

int rf_chan_resp_wait(rf_chan_t *ch, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

    for (;;) {
        int r = rf_chan_resp_arm(ch, NULL, NULL), e = 0;
        int left = -1;

        if (r != 0)
            return r;
        if (timeout_ms >= 0) {
            int64_t l = deadline - now_ms();
            if (l <= 0) {
                rf_chan_resp_disarm(ch);
                return 0;
            }
            left = (int)l;
        }
        if (ch->efd >= 0) {
            struct pollfd pfd = {.fd = ch->efd, .events = POLLIN};
            if (poll(&pfd, 1, left) < 0)
                e = errno;
        } else {
            struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
            if (futex(&ch->shm->resp_bell, FUTEX_WAIT, RF_CHAN_WAIT_DATA, left >= 0 ? &ts : NULL) <
                0)
                e = errno;
        }
        rf_chan_resp_disarm(ch);
        if (e == EINTR)
            return -EINTR;
    }
}

void rf_chan_resp_set_broken(rf_chan_t *ch)
{
    take_role(ch, RF_CHAN_ROLE_RESP);
    ch->broken = 1;
}

int rf_chan_resp_broken(const rf_chan_t *ch)
{
    return ch->broken;
}

/* ---- executor side ---- */

int rf_chan_exec_peek(rf_chan_t *ch, rf_chan_msg_t *m)
{
    take_role(ch, RF_CHAN_ROLE_EXEC);
    return ring_peek(&ch->req, RF_CHAN_ROLE_EXEC, m);
}

int rf_chan_exec_next(rf_chan_t *ch, rf_chan_msg_t *m)
{
    int r = rf_chan_exec_peek(ch, m);

    if (r == 1)
        ch->req.pos += ch->req.peek;
    return r;
}

int rf_chan_exec_release(rf_chan_t *ch)
{
    take_role(ch, RF_CHAN_ROLE_EXEC);
    ring_release(&ch->req);
    return 0;
}

static bool exec_req_ready(rf_chan_t *ch, uint32_t unused)
{
    return atomic_load_explicit(ch->req.prod, memory_order_seq_cst) != ch->req.pos;
}

/* Punches [from, to) of ring r (page-aligned) out of the memfd. */
static long ring_punch(rf_chan_ring_t *r, uint32_t from, uint32_t to)
{
    if (to <= from || madvise(r->base + from, to - from, MADV_REMOVE) < 0)
        return 0;
    return (long)(to - from);
}

long rf_chan_exec_trim(rf_chan_t *ch)
{
    take_role(ch, RF_CHAN_ROLE_EXEC);
    rf_chan_ring_t *r = &ch->resp;
    if (r->hwm <= RF_CHAN_KEEP)
        return 0;
    if (ring_free(r) != r->size)
        return -EAGAIN; /* the responder has not read everything yet */
    /* The page at the cursor stays: the next record's rewind writes a PAD
     * there (and that PAD makes the next trim take it). The reader never
     * looks beyond the cursor, and a punched page reads back as zeros. */
    uint32_t off = r->pos & r->mask, cur = off / RF_CHAN_PAGE * RF_CHAN_PAGE;
    uint32_t end = (r->hwm + RF_CHAN_PAGE - 1) / RF_CHAN_PAGE * RF_CHAN_PAGE;
    long freed;
    if (cur >= RF_CHAN_KEEP && cur < end)
        freed = ring_punch(r, RF_CHAN_KEEP, cur) + ring_punch(r, cur + RF_CHAN_PAGE, end);
    else
        freed = ring_punch(r, RF_CHAN_KEEP, end);
    r->hwm = 0;
    return freed;
}

int rf_chan_exec_wait(rf_chan_t *ch, int timeout_ms)
{
    take_role(ch, RF_CHAN_ROLE_EXEC);
    /* Idle after a large response: give its pages back once a while has
     * passed without a request (a steady stream of large responses never
     * waits that long, so it keeps its pages and faults none in). */
    while (ch->resp.hwm > RF_CHAN_KEEP && (timeout_ms < 0 || timeout_ms > RF_CHAN_TRIM_MS)) {
        int r = bell_wait(ch, &ch->shm->exec_bell, RF_CHAN_WAIT_DATA, exec_req_ready, 0,
                          RF_CHAN_TRIM_MS);
        if (r != 0)
            return r;
        if (timeout_ms > 0)
            timeout_ms -= RF_CHAN_TRIM_MS;
        (void)rf_chan_exec_trim(ch);
    }
    return bell_wait(ch, &ch->shm->exec_bell, RF_CHAN_WAIT_DATA, exec_req_ready, 0, timeout_ms);
}

/* Room for a record of rec bytes (a bad cons index counts as ready: the
 * put that follows reports it). */
static bool exec_room(rf_chan_t *ch, uint32_t rec)
{
    atomic_thread_fence(memory_order_seq_cst);
    int64_t fr = ring_free(&ch->resp);
    return fr < 0 || ring_need(&ch->resp, rec) <= (uint64_t)fr;
}

static int exec_put_flags(rf_chan_t *ch, uint32_t type, uint32_t flags, uint32_t slot, uint32_t gen,
                          uint32_t arg0, uint32_t arg1, const void *data, size_t len, int nonblock);

int rf_chan_exec_put(rf_chan_t *ch, uint32_t type, uint32_t slot, uint32_t gen, uint32_t arg0,
                     uint32_t arg1, const void *data, size_t len, int nonblock)
{
    return exec_put_flags(ch, type, 0, slot, gen, arg0, arg1, data, len, nonblock);
}

static int exec_put_flags(rf_chan_t *ch, uint32_t type, uint32_t flags, uint32_t slot, uint32_t gen,
                          uint32_t arg0, uint32_t arg1, const void *data, size_t len, int nonblock)
{
    take_role(ch, RF_CHAN_ROLE_EXEC);
    if (type < RF_CHAN_STDOUT || type > RF_CHAN_TYPE_MAX)
        return -EINVAL;
    if (len > rf_chan_max_payload(ch->resp.size))
        return -E2BIG;
    if (len && type != RF_CHAN_STDOUT && type != RF_CHAN_STDERR)
        return -EINVAL;
    rf_chan_rec_t h = {.len = (uint32_t)len,
                       .type = (uint16_t)type,
                       .flags = (uint16_t)flags,
                       .slot = slot,
                       .gen = gen,
                       .arg0 = arg0,
                       .arg1 = arg1};
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    for (;;) {
        int r = ring_put(&ch->resp, &h, &iov, len ? 1 : 0);

        if (r == 0) {
            ch->st.records++;
            /* Output records wait for the request's FLUSH or END (or a full
             * ring): one doorbell per request, not one per record. */
            if (type != RF_CHAN_STDOUT && type != RF_CHAN_STDERR)
                bell_ring(ch, &ch->shm->resp_bell, RF_CHAN_WAIT_DATA, ch->efd);
            publish_stats(ch);
            return 0;
        }
        if (r != -EAGAIN)
            return r;
        ch->st.full++;
        /* The responder must drain what is there before we get room. */
        bell_ring(ch, &ch->shm->resp_bell, RF_CHAN_WAIT_DATA, ch->efd);
        if (nonblock) {
            publish_stats(ch);
            return -EAGAIN;
        }
        r = bell_wait(ch, &ch->shm->exec_bell, RF_CHAN_WAIT_ROOM, exec_room, rec_bytes(h.len), -1);
        if (r < 0)
            return r;
    }
}

int rf_chan_exec_write(rf_chan_t *ch, uint32_t type, uint32_t slot, uint32_t gen, const void *data,
                       size_t len)
{
    const uint8_t *p = data;
    size_t max = rf_chan_max_payload(ch->resp.size);

    if (type != RF_CHAN_STDOUT && type != RF_CHAN_STDERR)
        return -EINVAL;
    /* Quarter-ring chunks keep both sides busy while the ring is refilled. */
    max = max / 2 > 0 ? max / 2 : max;
    while (len) {
        size_t n = len < max ? len : max;
        int r = rf_chan_exec_put(ch, type, slot, gen, 0, 0, p, n, 0);
        if (r < 0)
            return r;
        p += n;
        len -= n;
    }
    return 0;
}

int rf_chan_exec_end(rf_chan_t *ch, uint32_t slot, uint32_t gen, uint32_t app_status,
                     uint32_t proto_status)
{
    return rf_chan_exec_put(ch, RF_CHAN_END, slot, gen, app_status, proto_status, NULL, 0, 0);
}

int rf_chan_exec_end_more(rf_chan_t *ch, uint32_t slot, uint32_t gen, uint32_t app_status)
{
    return exec_put_flags(ch, RF_CHAN_END, RF_CHAN_F_MORE, slot, gen, app_status, 0, NULL, 0, 0);
}

int rf_chan_exec_done(rf_chan_t *ch, uint32_t slot, uint32_t gen)
{
    return rf_chan_exec_put(ch, RF_CHAN_DONE, slot, gen, 0, 0, NULL, 0, 0);
}
