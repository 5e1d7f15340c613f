/*
 * rf_conn: connection and request lifecycle, independent of the backend.
 * Backends report accepts, bytes, EOFs and finished sends; this file feeds
 * the FastCGI session (core/rf_proto), hands complete requests to ping,
 * status or the pool's handler, frames responses into output blocks, keeps
 * timers and decides when a connection closes. One thread owns each
 * connection; nothing here locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rf_fcgi.h"
#include "rf_handler.h"
#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

#define RF_TIMER_TICK_NS (100u * 1000 * 1000)
#define RF_OBLK_MAX_FREE 256
/* How long a connection closed after an error answer may keep sending
 * before we stop draining it and close anyway. */
#define RF_LINGER_MS 2000

uint64_t rf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- receive buffers ------------------------------------------------------ */

void rf_rbuf_release(rf_ref_t *ref)
{
    rf_rbuf_t *b = rf_container_of(ref, rf_rbuf_t, ref);
    b->t->be->rbuf_return(b->t, b);
}

/* ---- output blocks -------------------------------------------------------- */

static rf_oblk_t *rf_oblk_get(rf_thread_t *t, size_t need)
{
    rf_oblk_t *b;
    if (need <= RF_OBLK_SIZE && t->oblk_free) {
        b = t->oblk_free;
        t->oblk_free = b->next;
        t->noblk_free--;
    } else {
        size_t cap = need > RF_OBLK_SIZE ? need : RF_OBLK_SIZE;
        b = rf_malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->cap = (uint32_t)cap;
    }
    b->next = NULL;
    b->start = b->end = 0;
    return b;
}

static void rf_oblk_put(rf_thread_t *t, rf_oblk_t *b)
{
    if (b->cap == RF_OBLK_SIZE && t->noblk_free < RF_OBLK_MAX_FREE) {
        b->next = t->oblk_free;
        t->oblk_free = b;
        t->noblk_free++;
        return;
    }
    rf_free(b);
}

static void rf_conn_out_drop(rf_thread_t *t, rf_conn_t *c)
{
    rf_oblk_t *next;
    for (rf_oblk_t *b = c->out_head; b; b = next) {
        next = b->next;
        rf_oblk_put(t, b);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

/* Contiguous room for `need` bytes at the end of c's output. */
static uint8_t *rf_conn_out_reserve(rf_conn_t *c, size_t need)
{
    rf_oblk_t *b = c->out_tail;
    if (b == NULL || b->cap - b->end < need) {
        b = rf_oblk_get(c->t, need);
        if (b == NULL)
            return NULL;
        if (c->out_tail)
            c->out_tail->next = b;
        else
            c->out_head = b;
        c->out_tail = b;
    }
    return b->data + b->end;
}

static void rf_conn_out_commit(rf_conn_t *c, size_t n)
{
    c->out_tail->end += (uint32_t)n;
    c->out_bytes += n;
}

static void rf_conn_dirty(rf_thread_t *t, rf_conn_t *c)
{
    if (c->in_dirty)
        return;
    c->in_dirty = 1;
    c->dirty_next = t->dirty;
    t->dirty = c;
}

static int rf_conn_out_append(rf_conn_t *c, const void *p, size_t n)
{
    uint8_t *dst = rf_conn_out_reserve(c, n);
    if (dst == NULL)
        return -ENOMEM;
    memcpy(dst, p, n);
    rf_conn_out_commit(c, n);
    rf_conn_dirty(c->t, c);
    return 0;
}

int rf_conn_iov(rf_conn_t *c, struct iovec *iov, int max, size_t *bytes)
{
    int n = 0;
    size_t total = 0;
    for (rf_oblk_t *b = c->out_head; b && n < max; b = b->next) {
        if (b->end == b->start)
            continue;
        iov[n].iov_base = b->data + b->start;
        iov[n].iov_len = b->end - b->start;
        total += iov[n].iov_len;
        n++;
    }
    *bytes = total;
    return n;
}

/* ---- connection table and timers ------------------------------------------ */

rf_conn_t *rf_conn_lookup(rf_thread_t *t, uint32_t slot, uint32_t gen)
{
    if (slot >= t->nslots)
        return NULL;
    rf_conn_t *c = t->slots[slot];
    if (c == NULL || c->gen != gen)
        return NULL;
    RF_ASSERT(c->magic == RF_CONN_MAGIC);
    return c;
}

static int rf_slot_alloc(rf_thread_t *t, uint32_t *slot)
{
    if (t->nfree_slots == 0) {
        uint32_t n = t->nslots ? t->nslots * 2 : 256;
        if (n > 0xffffff)
            return -EMFILE;
        rf_conn_t **slots = rf_realloc(t->slots, n * sizeof(*slots));
        if (slots == NULL)
            return -ENOMEM;
        uint32_t *free_slots = rf_realloc(t->free_slots, n * sizeof(*free_slots));
        if (free_slots == NULL) {
            t->slots = slots;
            return -ENOMEM;
        }
        t->slots = slots;
        t->free_slots = free_slots;
        for (uint32_t i = n; i-- > t->nslots;) {
            slots[i] = NULL;
            free_slots[t->nfree_slots++] = i;
        }
        t->nslots = n;
    }
    *slot = t->free_slots[--t->nfree_slots];
    return 0;
}

static void rf_conn_timer(rf_thread_t *t, rf_conn_t *c, int kind)
{
    /* The read deadline runs from the first byte of a request and is not
     * pushed back by more bytes: that is what stops a slowloris. */
    if (c->timer == kind && kind != RF_TIMER_IDLE)
        return;
    rf_link_remove(&c->tlink);
    c->timer = (uint8_t)kind;
    uint32_t ms = 0;
    if (kind == RF_TIMER_READ)
        ms = c->pool->read_timeout_ms;
    else if (kind == RF_TIMER_IDLE)
        ms = t->io->conf->idle_timeout_ms;
    else if (kind == RF_TIMER_LINGER)
        ms = RF_LINGER_MS;
    if (ms == 0)
        return;
    c->deadline_ns = t->now_ns + (uint64_t)ms * 1000000u;
    rf_link_append(&t->timers[c->pool_idx * RF_TIMER_KINDS + kind - 1], &c->tlink);
}

static void rf_conn_close_after_flush(rf_thread_t *t, rf_conn_t *c);

static void rf_conn_update_timer(rf_thread_t *t, rf_conn_t *c)
{
    if (c->dead || c->closing)
        return; /* its timer is the linger deadline, or none */
    if (!rf_proto_idle(&c->proto))
        rf_conn_timer(t, c, RF_TIMER_READ);
    else if (c->proto.nreqs == 0 && t->draining)
        rf_conn_close_after_flush(t, c); /* graceful stop: no keep-alive */
    else if (c->proto.nreqs == 0)
        rf_conn_timer(t, c, RF_TIMER_IDLE);
    else
        rf_conn_timer(t, c, RF_TIMER_NONE);
}

/* Close once everything queued has gone out. */
static void rf_conn_close_after_flush(rf_thread_t *t, rf_conn_t *c)
{
    c->closing = 1;
    rf_link_remove(&c->tlink);
    c->timer = RF_TIMER_NONE;
    rf_conn_dirty(t, c);
}

/* A connection that was accepted but has not sent its first record yet
 * (RF_TIMER_READ) is kept: its client connected before the stop and its
 * request is on the way; request.read_timeout and the drain's deadline
 * bound it. */
void rf_conn_drain(rf_thread_t *t)
{
    for (uint32_t i = 0; i < t->nslots; i++) {
        rf_conn_t *c = t->slots[i];
        if (c && !c->dead && !c->closing && c->timer == RF_TIMER_IDLE)
            rf_conn_close_after_flush(t, c);
    }
}

/* ---- requests --------------------------------------------------------------- */

static void rf_conn_free_req(rf_req_t *r)
{
    RF_ASSERT(r->magic == RF_REQ_MAGIC);
    rf_req_release_refs(r);
    r->magic = 0;
    rf_arena_destroy(r->arena);
}

static rf_req_t *rf_conn_req_new(void *ctx)
{
    rf_conn_t *c = ctx;
    rf_arena_t *a = rf_arena_create(&c->t->arena_pool);
    if (a == NULL)
        return NULL;
    rf_req_t *r = rf_arena_alloc(a, sizeof(*r));
    if (r == NULL) {
        rf_arena_destroy(a);
        return NULL;
    }
    r->magic = RF_REQ_MAGIC;
    r->arena = a;
    r->conn = c;
    return r;
}

static void rf_conn_req_ready(void *ctx, rf_req_t *r)
{
    rf_conn_t *c = ctx;
    r->begin_ns = c->t->now_ns;
    c->nlive++;
    if (rf_status_handle(c->t, c, r))
        return;
    const rf_handler_t *h = c->pool->handler;
    if (h == NULL)
        rf_disp_start(r);
    else
        h->start(h->ctx, r);
}

static void rf_conn_req_abort(void *ctx, rf_req_t *r)
{
    rf_conn_t *c = ctx;
    const rf_handler_t *h = c->pool->handler;
    if (h == NULL)
        rf_disp_abort(r);
    else
        h->abort(h->ctx, r);
}

static void rf_conn_req_free(void *ctx, rf_req_t *r)
{
    rf_conn_free_req(r);
}

static void rf_spill_cleanup(void *data)
{
    close((int)(intptr_t)data);
}

static int rf_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A spill file is written in aligned pieces of this size: a filesystem
 * like ext4 pays per write and per page it touches unaligned (16 KiB
 * receive-buffer slices cost it three times as much per MiB as 256 KiB
 * writes). */
#define RF_CONN_SPILL_BUF (256u << 10)

/* What a spilling stream has not written yet, in the request's arena. */
typedef struct rf_spill {
    uint8_t *buf; /* RF_CONN_SPILL_BUF bytes, NULL: write through */
    size_t have;
} rf_spill_t;

static int rf_spill_put(int fd, rf_spill_t *sp, const uint8_t *p, size_t n)
{
    int rc;
    if (sp->buf == NULL)
        return rf_write_all(fd, p, n);
    while (n > 0) {
        size_t k = RF_CONN_SPILL_BUF - sp->have;
        if (k > n)
            k = n;
        memcpy(sp->buf + sp->have, p, k);
        sp->have += k;
        p += k;
        n -= k;
        if (sp->have == RF_CONN_SPILL_BUF) {
            if ((rc = rf_write_all(fd, sp->buf, sp->have)) < 0)
                return rc;
            sp->have = 0;
        }
    }
    return 0;
}

/*
 * Bodies beyond request.buffer_memory go to an unlinked temp file whose fd
 * travels with the request. Written synchronously: a page-cache write is
 * cheaper than a round trip through the ring, and it only happens for large
 * bodies. n == 0 (the end of the stream) writes what is still buffered.
 */
static int rf_conn_spill(void *ctx, rf_req_t *r, rf_stream_t *st, const uint8_t *p, size_t n)
{
    int rc;
    rf_spill_t *sp = st->spill;
    if (st->fd < 0) {
        const char *dir = getenv("TMPDIR");
        if (dir == NULL || *dir == '\0')
            dir = "/tmp";
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/ringfpm-body-XXXXXX", dir);
            fd = mkostemp(path, O_CLOEXEC);
            if (fd < 0)
                return -errno;
            unlink(path);
        }
        if (rf_arena_cleanup_add(r->arena, rf_spill_cleanup, (void *)(intptr_t)fd) < 0) {
            close(fd);
            return -ENOMEM;
        }
        st->fd = fd;
        sp = rf_arena_alloc(r->arena, sizeof(*sp));
        if (sp == NULL)
            return -ENOMEM;
        sp->have = 0;
        sp->buf = rf_arena_alloc(r->arena, RF_CONN_SPILL_BUF); /* NULL: unbuffered */
        st->spill = sp;
        for (rf_chunk_t *ch = st->head; ch; ch = ch->next)
            if ((rc = rf_spill_put(fd, sp, ch->data, ch->len)) < 0)
                return rc;
    }
    if (sp == NULL)
        return rf_write_all(st->fd, p, n);
    if (n == 0) {
        if (sp->have > 0 && (rc = rf_write_all(st->fd, sp->buf, sp->have)) < 0)
            return rc;
        sp->have = 0;
        return 0;
    }
    return rf_spill_put(st->fd, sp, p, n);
}

static int rf_conn_proto_send(void *ctx, const uint8_t *p, size_t n)
{
    rf_conn_t *c = ctx;
    if (c->dead)
        return 0;
    return rf_conn_out_append(c, p, n);
}

static const rf_proto_ops_t rf_conn_proto_ops = {
    .req_new = rf_conn_req_new,
    .req_ready = rf_conn_req_ready,
    .req_abort = rf_conn_req_abort,
    .req_free = rf_conn_req_free,
    .spill = rf_conn_spill,
    .send = rf_conn_proto_send,
};

/* ---- the handler side ------------------------------------------------------- */

int rf_resp_write(rf_req_t *r, uint8_t stream, const void *data, size_t n)
{
    RF_ASSERT(r->magic == RF_REQ_MAGIC);
    rf_conn_t *c = r->conn;
    if (c->dead)
        return -EPIPE;
    const uint8_t *p = data;
    while (n > 0) {
        size_t take = n > RF_FCGI_CHUNK ? RF_FCGI_CHUNK : n;
        uint8_t pad = rf_fcgi_padding(take);
        size_t rec = RF_FCGI_HEADER_LEN + take + pad;
        uint8_t *dst = rf_conn_out_reserve(c, rec);
        if (dst == NULL)
            return -ENOMEM;
        rf_fcgi_header(dst, stream, r->id, (uint16_t)take, pad);
        memcpy(dst + RF_FCGI_HEADER_LEN, p, take);
        memset(dst + RF_FCGI_HEADER_LEN + take, 0, pad);
        rf_conn_out_commit(c, rec);
        p += take;
        n -= take;
    }
    rf_conn_dirty(c->t, c);
    return 0;
}

int rf_resp_puts(rf_req_t *r, uint8_t stream, const char *s)
{
    return rf_resp_write(r, stream, s, strlen(s));
}

static void rf_conn_zombie(rf_thread_t *t, rf_conn_t *c)
{
    c->zombie_next = t->zombies;
    t->zombies = c;
}

void rf_resp_end(rf_req_t *r, uint32_t app_status, uint8_t protocol_status)
{
    RF_ASSERT(r->magic == RF_REQ_MAGIC);
    rf_conn_t *c = r->conn;
    rf_thread_t *t = c->t;
    if (!c->dead) {
        uint8_t *dst = rf_conn_out_reserve(c, RF_FCGI_END_REQUEST_LEN);
        if (dst) {
            rf_fcgi_end_request(dst, r->id, app_status, protocol_status);
            rf_conn_out_commit(c, RF_FCGI_END_REQUEST_LEN);
            rf_conn_dirty(t, c);
        } else {
            rf_conn_close(t, c); /* the client would wait forever otherwise */
        }
    }
    int close_now = rf_proto_req_done(&c->proto, r);
    rf_conn_free_req(r);
    RF_ASSERT(c->nlive > 0);
    c->nlive--;
    if (c->dead) {
        if (c->fd_closed && c->nlive == 0)
            rf_conn_zombie(t, c);
        return;
    }
    if (close_now)
        rf_conn_close_after_flush(t, c);
    else
        rf_conn_update_timer(t, c);
}

/* ---- backend events ------------------------------------------------------- */

void rf_conn_accepted(rf_thread_t *t, rf_listener_t *l, int fd)
{
    rf_io_t *io = t->io;
    if (l->nallowed && !rf_listen_allowed(l, fd)) {
        close(fd);
        return;
    }
    if (io->max_conns_per_thread && t->nconns >= io->max_conns_per_thread) {
        close(fd);
        RF_STAT_INC(&t->stats, limit_connections);
        static __thread uint64_t last_log;
        if (t->now_ns - last_log > 1000000000u) {
            last_log = t->now_ns;
            rf_log(RF_LOG_WARNING,
                   "[pool %s] connection refused: responder.max_connections (%u) reached",
                   l->pool->name, io->conf->max_connections);
        }
        return;
    }
    uint32_t slot;
    rf_conn_t *c = rf_malloc(sizeof(*c));
    if (c == NULL || rf_slot_alloc(t, &slot) < 0) {
        rf_free(c);
        close(fd);
        RF_STAT_INC(&t->stats, accept_errors);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->magic = RF_CONN_MAGIC;
    c->gen = ++t->gen;
    c->slot = slot;
    c->fd = fd;
    c->t = t;
    c->pool = l->pool;
    c->pool_idx = l->pool_idx;
    rf_link_init(&c->tlink);
    rf_proto_init(&c->proto, &rf_conn_proto_ops, c, &l->pool->limits, &t->pstats);
    t->slots[slot] = c;
    t->nconns++;
    RF_STAT_INC(&t->stats, accepted);
    __atomic_store_n(&t->stats.active, t->stats.active + 1, __ATOMIC_RELAXED);
    if (t->dstats) {
        RF_STAT_INC(&t->dstats[c->pool_idx], conns);
        rf_status_publish(t, c->pool_idx);
    }
    /* php-fpm gives a new connection a few seconds to speak; so do we. */
    rf_conn_timer(t, c, RF_TIMER_READ);
    if (t->be->conn_start(t, c) < 0)
        rf_conn_close(t, c);
}

void rf_conn_data(rf_thread_t *t, rf_conn_t *c, const uint8_t *p, size_t n, rf_ref_t *owner)
{
    if (c->dead || c->closing)
        return;
    int rc = rf_proto_feed(&c->proto, p, n, owner);
    if (rc == 0) {
        if (c->proto.closing && c->proto.nreqs == 0)
            rf_conn_close_after_flush(t, c);
        else
            rf_conn_update_timer(t, c);
        return;
    }
    if (rc == -E2BIG) {
        rf_log(RF_LOG_WARNING, "[pool %s] %s; answered with an error and closing the connection",
               c->pool->name, c->proto.error);
        /* The client may still be sending this request: closing with unread
         * input would reset the connection and could destroy our answer. */
        c->linger = 1;
        rf_conn_close_after_flush(t, c);
        return;
    }
    if (rc == -EPROTO)
        rf_log(RF_LOG_WARNING, "[pool %s] closing connection: %s", c->pool->name,
               c->proto.error ? c->proto.error : "malformed FastCGI input");
    else
        rf_log(RF_LOG_ERROR, "[pool %s] closing connection: %s", c->pool->name, strerror(-rc));
    rf_conn_close(t, c);
}

void rf_conn_eof(rf_thread_t *t, rf_conn_t *c, int err)
{
    if (c->dead)
        return;
    if (err < 0 && err != -ECONNRESET && err != -EPIPE) {
        RF_STAT_INC(&t->stats, closed_errors);
        rf_log_debug("[pool %s] connection error: %s", c->pool->name, strerror(-err));
    }
    if (err == 0 && c->closing && !c->lingering) {
        /* The peer is done; finish sending what we have, then close. */
        return;
    }
    rf_conn_close(t, c);
}

void rf_conn_sent(rf_thread_t *t, rf_conn_t *c, size_t n)
{
    RF_ASSERT(n <= c->out_bytes);
    c->out_bytes -= n;
    while (n > 0) {
        rf_oblk_t *b = c->out_head;
        size_t avail = b->end - b->start;
        if (n < avail) {
            b->start += (uint32_t)n;
            break;
        }
        n -= avail;
        c->out_head = b->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        rf_oblk_put(t, b);
    }
    /* Drop drained empty blocks at the head too (but keep the tail: the
     * next response is framed into it). */
    while (c->out_head && c->out_head != c->out_tail && c->out_head->start == c->out_head->end) {
        rf_oblk_t *b = c->out_head;
        c->out_head = b->next;
        rf_oblk_put(t, b);
    }
    if (c->out_bytes == 0 && c->out_head) {
        /* Nothing queued: give the block back so an idle connection holds
         * no output memory. */
        rf_oblk_put(t, c->out_head);
        c->out_head = c->out_tail = NULL;
    }
    /* More to send (uring: the next send) or a close to finish; epoll with
     * EPOLLOUT armed resumes from its own event instead. */
    if ((c->out_bytes || c->closing) && !c->want_out)
        rf_conn_dirty(t, c);
}

void rf_conn_close(rf_thread_t *t, rf_conn_t *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    rf_link_remove(&c->tlink);
    c->timer = RF_TIMER_NONE;
    rf_proto_close(&c->proto);
    rf_conn_out_drop(t, c);
    t->be->close(t, c);
}

void rf_conn_fd_closed(rf_thread_t *t, rf_conn_t *c)
{
    RF_ASSERT(c->dead && !c->fd_closed);
    c->fd_closed = 1;
    c->fd = -1;
    t->slots[c->slot] = NULL;
    t->free_slots[t->nfree_slots++] = c->slot;
    t->nconns--;
    __atomic_store_n(&t->stats.active, t->stats.active - 1, __ATOMIC_RELAXED);
    if (c->nlive == 0)
        rf_conn_zombie(t, c);
}

/* Everything queued went out on a closing connection: close it, or first
 * shut the write side and drain the peer (lingering close). */
void rf_conn_finish(rf_thread_t *t, rf_conn_t *c)
{
    if (!c->linger || c->lingering) {
        if (!c->lingering)
            rf_conn_close(t, c);
        return;
    }
    c->lingering = 1;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        rf_conn_close(t, c);
        return;
    }
    rf_conn_timer(t, c, RF_TIMER_LINGER);
}

/*
 * Receive buffers are running out: copy every request that still points
 * into them into its own arena and let the buffers go. Without this,
 * half-received requests could hold every buffer while waiting for bytes
 * that can no longer be received. Rare, so a scan of all connections.
 */
static void rf_thread_relieve(rf_thread_t *t)
{
    for (uint32_t i = 0; i < t->nslots; i++) {
        rf_conn_t *c = t->slots[i];
        if (c == NULL || c->dead)
            continue;
        for (rf_req_t *r = c->proto.reqs; r; r = r->next) {
            if (r->nrefs && rf_req_detach(r) < 0) {
                rf_log(RF_LOG_ERROR, "[pool %s] out of memory copying a request", c->pool->name);
                rf_conn_close(t, c);
                break;
            }
        }
    }
}

static void rf_thread_timers(rf_thread_t *t)
{
    int nlists = t->io->conf->npools * RF_TIMER_KINDS;
    for (int i = 0; i < nlists; i++) {
        rf_link_t *head = &t->timers[i];
        while (!rf_link_empty(head)) {
            rf_conn_t *c = rf_container_of(head->next, rf_conn_t, tlink);
            if (c->deadline_ns > t->now_ns)
                break;
            if (c->timer == RF_TIMER_READ) {
                RF_STAT_INC(&t->stats, timeouts_read);
                rf_log(RF_LOG_WARNING,
                       "[pool %s] closing connection: request not received within "
                       "request.read_timeout (%ums)",
                       c->pool->name, c->pool->read_timeout_ms);
            } else if (c->timer == RF_TIMER_LINGER) {
                rf_log_debug("[pool %s] lingering close timed out", c->pool->name);
            } else {
                RF_STAT_INC(&t->stats, timeouts_idle);
                rf_log_debug("[pool %s] closing idle keep-alive connection", c->pool->name);
            }
            rf_conn_close(t, c);
        }
    }
}

void rf_thread_after_events(rf_thread_t *t)
{
    /* t->now_ns was read by the backend's poll right after its wait. */
    /* Push output: each connection gets one send for everything its
     * requests produced during this iteration. */
    rf_conn_t *list = t->dirty;
    t->dirty = NULL;
    while (list) {
        rf_conn_t *c = list;
        list = c->dirty_next;
        c->in_dirty = 0;
        if (c->dead)
            continue;
        if (c->out_bytes)
            t->be->flush(t, c);
        else if (c->closing && !c->send_busy)
            rf_conn_finish(t, c);
    }
    if (t->rbuf_free < t->rbuf_count / 4 && t->now_ns >= t->next_relieve_ns) {
        rf_thread_relieve(t);
        t->next_relieve_ns = t->now_ns + 10000000u;
    }
    if (t->now_ns >= t->next_timer_ns) {
        rf_thread_timers(t);
        t->next_timer_ns = t->now_ns + RF_TIMER_TICK_NS;
    }
    /* Free closed connections, except those still on the dirty list (a
     * close during this iteration's flush) or on the starved list (closed
     * while waiting for receive buffers): they go once they are off it. */
    rf_conn_t *z = t->zombies, *keep = NULL;
    t->zombies = NULL;
    while (z) {
        rf_conn_t *c = z;
        z = c->zombie_next;
        RF_ASSERT(c->nlive == 0 && c->fd_closed);
        if (c->in_dirty || c->starved) {
            c->zombie_next = keep;
            keep = c;
            continue;
        }
        c->magic = 0;
        rf_free(c);
    }
    t->zombies = keep;
}
