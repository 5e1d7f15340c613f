/*
 * rf_chan: the channel between the responder (trusted, many threads, one
 * process) and one executor process (runs arbitrary PHP: untrusted). All
 * payload lives in one sealed memfd mapping created by master before the
 * fork; two single-producer single-consumer record rings run over it:
 *
 *   request ring   responder -> executor: REQUEST (params + inline body),
 *                  ABORT
 *   response ring  executor -> responder: STDOUT/STDERR chunks, FLUSH
 *                  markers, END (app status + protocol status)
 *
 * Doorbells are futex words in the mapping (shared, not FUTEX_PRIVATE: they
 * cross processes). A side only rings the peer's doorbell when the peer has
 * announced that it is going to sleep, so a steady stream costs no syscalls:
 * an executor that finishes a request and finds the next one queued takes it
 * directly, and a responder that is awake anyway just polls the response
 * ring in its loop. The responder sleeps on its doorbell through io_uring
 * (IORING_OP_FUTEX_WAIT, kernel >= 6.7: rf_chan_resp_arm hands out the
 * address and the expected value); with the epoll backend the channel is
 * created with an eventfd which the executor writes instead of FUTEX_WAKE.
 *
 * Trust: the responder never trusts what it reads from the mapping. Ring
 * sizes and its own indices live in private memory (rf_chan_t); the peer's
 * index and each record header are copied out once, then bounds-checked. A
 * bad one marks the channel broken (-EPROTO from then on) and the caller
 * kills the executor. Record payload bytes may still change under the reader
 * after validation (the executor can write them), which is harmless to
 * memory safety: lengths and offsets are never re-read.
 *
 * Who calls what:
 *   master      rf_chan_create (before forking the executor), rf_chan_fd to
 *               pass the memfd to the responder, rf_chan_destroy;
 *   responder   rf_chan_open on the received fd (or uses the created handle
 *               when it forked after create), then rf_chan_resp_* from the
 *               one thread that owns this executor (no locks: one producer,
 *               one consumer per ring);
 *   executor    rf_chan_exec_* on the handle inherited through fork (it
 *               should close the memfd: it needs only the mapping).
 * A handle takes a role on its first rf_chan_resp_* / rf_chan_exec_* call;
 * mixing roles on one handle trips an RF_ASSERT.
 */
#ifndef RF_CHAN_H
#define RF_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_chan rf_chan_t;

/* Record types. Requests flow responder -> executor, the rest back. */
enum rf_chan_type {
    RF_CHAN_PAD = 0,     /* internal: fills the ring tail before a wrap */
    RF_CHAN_REQUEST = 1, /* payload: params (arg0 bytes) then inline body */
    RF_CHAN_ABORT = 2,   /* client aborted request slot/gen; no payload */
    RF_CHAN_STDOUT = 3,  /* payload: output bytes */
    RF_CHAN_STDERR = 4,  /* payload: error-stream bytes */
    RF_CHAN_FLUSH = 5,   /* send what is buffered for slot/gen now */
    RF_CHAN_END = 6,     /* arg0 = app status, arg1 = protocol status */
    RF_CHAN_DONE = 7,    /* the script of slot/gen returned after an END flagged
                          * RF_CHAN_F_MORE; no payload */
    RF_CHAN_TYPE_MAX = 7
};

/* REQUEST flags. */
#define RF_CHAN_F_BODY_FD                                                                          \
    0x1u /* body too large: its fd follows over the caller's                                       \
          * socketpair (SCM_RIGHTS); arg1 = body length */
#define RF_CHAN_F_KNOWN RF_CHAN_F_BODY_FD

/* END flag: the request is over for the client but its script goes on
 * (fastcgi_finish_request): a DONE record follows when it returns. */
#define RF_CHAN_F_MORE 0x1u

/*
 * One record as the reader sees it. Every field is a private copy made
 * after validation; data points into the mapping and stays valid until the
 * reader's next rf_chan_*_release (after that the peer may reuse it). slot
 * and gen are copied verbatim: the responder must check them against the
 * request it sent on this channel and call rf_chan_resp_set_broken on a
 * mismatch.
 */
typedef struct rf_chan_msg {
    uint32_t type;  /* enum rf_chan_type, never RF_CHAN_PAD */
    uint32_t flags; /* RF_CHAN_F_* (requests only, else 0) */
    uint32_t slot;  /* responder's request slot id */
    uint32_t gen;   /* responder's request generation */
    uint32_t arg0;  /* REQUEST: params length; END: app status */
    uint32_t arg1;  /* REQUEST: body length (inline or via fd); END: protocol status */
    uint64_t arg2;  /* REQUEST: queue-entry time (ns, CLOCK_REALTIME) */
    const uint8_t *data;
    uint32_t len; /* payload bytes at data */
} rf_chan_msg_t;

/* Request descriptor for rf_chan_resp_send_request. */
typedef struct rf_chan_req {
    uint32_t slot, gen;
    uint32_t flags;      /* RF_CHAN_F_* */
    uint32_t params_len; /* first params_len bytes of the gathered payload */
    uint32_t body_len;   /* total body length (the rest is inline unless BODY_FD) */
    uint64_t t_queued_ns;
} rf_chan_req_t;

typedef struct rf_chan_opts {
    uint32_t req_ring_size;  /* bytes, power of two, 4 KiB..1 GiB; 0 = 256 KiB */
    uint32_t resp_ring_size; /* same; 0 = 256 KiB */
    uint32_t spin;           /* polls before a blocking wait sleeps; 0 = none */
    int resp_eventfd;        /* nonzero: the executor signals the responder through
                              * an eventfd (for the epoll backend) instead of FUTEX_WAKE */
} rf_chan_opts_t;

/*
 * Counters, per process and per side. wakes counts doorbell syscalls issued
 * (FUTEX_WAKE or eventfd write); waits counts sleep announcements (each may
 * end in a FUTEX_WAIT), so a side's wakes never exceed the peer's waits;
 * records counts records written by this side. The responder's copy is private;
 * rf_chan_peer_stats returns the executor's view published in the mapping,
 * which is untrusted and only fit for tests and display.
 */
typedef struct {
    uint64_t records;
    uint64_t wakes;
    uint64_t waits;
    uint64_t full; /* times a writer found its ring full */
} rf_chan_stats_t;

/* Largest payload one record can carry in a ring of `ring_size` bytes. */
uint32_t rf_chan_max_payload(uint32_t ring_size);

/*
 * Master, cold path: creates the sealed memfd (size/grow/shrink sealed, so
 * an executor holding the fd cannot truncate it under the responder), maps
 * it and initialises the header. opts may be NULL. Returns 0 and *out, or
 * -EINVAL for bad sizes, -ENOMEM, or the -errno of memfd/mmap/eventfd.
 */
int rf_chan_create(const rf_chan_opts_t *opts, rf_chan_t **out);

/*
 * Responder, cold path: maps a channel from its memfd (received from master
 * with SCM_RIGHTS). opts must equal the creator's: sizes are never read from
 * the mapping. efd is the creator's eventfd (or -1). Takes ownership of
 * neither fd (the handle dups them). Returns 0, -EINVAL when the fd is too
 * small, not sealed or the options are bad, or -errno.
 */
int rf_chan_open(int memfd, int efd, const rf_chan_opts_t *opts, rf_chan_t **out);

/* Unmaps and frees; closes the handle's fds. NULL is a no-op. Any role. */
void rf_chan_destroy(rf_chan_t *ch);

/* The memfd (to pass to the responder) and the eventfd (or -1). */
int rf_chan_fd(const rf_chan_t *ch);
int rf_chan_eventfd(const rf_chan_t *ch);

/* Executor after fork: closes the handle's memfd (it needs only the mapping). */
void rf_chan_close_fd(rf_chan_t *ch);

/*
 * Where things are in the mapping, for tests, fuzzers and benches that play
 * a (malicious) peer by writing it directly. Index words are uint32
 * free-running byte positions; records are 32-byte headers
 * {u32 len, u16 type, u16 flags, u32 slot, u32 gen, u32 arg0, u32 arg1,
 * u64 arg2} plus payload padded to 32, with PAD records filling a ring's
 * tail before a wrap.
 */
typedef struct {
    uint8_t *map;
    size_t map_len;
    uint8_t *req_ring, *resp_ring;
    uint32_t req_size, resp_size;
    uint32_t *req_prod, *req_cons, *resp_prod, *resp_cons, *exec_bell, *resp_bell;
} rf_chan_layout_t;

void rf_chan_layout(const rf_chan_t *ch, rf_chan_layout_t *out);

/* This process's counters for its side; the peer's as published (untrusted). */
void rf_chan_stats(const rf_chan_t *ch, rf_chan_stats_t *out);
void rf_chan_peer_stats(const rf_chan_t *ch, rf_chan_stats_t *out);

/* ---- responder side: one thread per channel, never blocks unless asked ---- */

/*
 * Queues a request: a REQUEST record whose payload gathers iov (params then
 * inline body; total must be params_len + inline body). Rings the executor
 * if it sleeps. Returns 0; -ENOBUFS when the ring has no room now (keep the
 * request in the pool queue and retry after the executor releases);
 * -E2BIG when the record could never fit; -EINVAL for inconsistent lengths;
 * -EPROTO when the channel is broken.
 */
int rf_chan_resp_send_request(rf_chan_t *ch, const rf_chan_req_t *req, const struct iovec *iov,
                              int iovcnt);

/* Queues ABORT for slot/gen. Same returns as rf_chan_resp_send_request. */
int rf_chan_resp_send_abort(rf_chan_t *ch, uint32_t slot, uint32_t gen);

/*
 * Reads the next response record into *m without consuming it (peek) or
 * consuming it (next). Returns 1 with *m, 0 when empty, -EPROTO when the
 * executor wrote a bad index or record (the channel is broken from then on;
 * kill the executor). Never reads outside the mapping.
 */
int rf_chan_resp_peek(rf_chan_t *ch, rf_chan_msg_t *m);
int rf_chan_resp_next(rf_chan_t *ch, rf_chan_msg_t *m);

/*
 * Gives the space of every consumed response record back to the executor
 * (their data pointers die) and rings it if it sleeps waiting for room.
 * Returns 0 or -EPROTO.
 */
int rf_chan_resp_release(rf_chan_t *ch);

/*
 * Going to sleep: announces it to the executor and re-checks. Returns 0 when
 * the caller may sleep: it must have a wait on *uaddr in flight before it
 * blocks — IORING_OP_FUTEX_WAIT with addr = *uaddr, addr2 = *val,
 * addr3 = FUTEX_BITSET_MATCH_ANY, fd = FUTEX2_SIZE_U32 (shared, not
 * FUTEX2_PRIVATE) — or, with the eventfd option, the eventfd in its epoll
 * set. A wait already in flight from an earlier arm still counts: the
 * executor wakes it. Returns 1 when a response is already readable (don't
 * sleep), -EPROTO when broken. uaddr/val may be NULL.
 */
int rf_chan_resp_arm(rf_chan_t *ch, uint32_t **uaddr, uint32_t *val);

/*
 * Awake again (any reason): withdraws the announcement so the executor stops
 * ringing, and drains the eventfd if there is one. Cheap; call once per loop
 * iteration after waking.
 */
void rf_chan_resp_disarm(rf_chan_t *ch);

/*
 * Blocking helper for tests, benches and simple callers: arm + FUTEX_WAIT
 * (or poll on the eventfd) + disarm. Returns 1 when a record is readable, 0
 * on timeout (timeout_ms < 0: none), -EPROTO when broken, -EINTR.
 */
int rf_chan_resp_wait(rf_chan_t *ch, int timeout_ms);

/*
 * Deferred doorbell: with on, a send that finds the executor asleep does not
 * FUTEX_WAKE it itself; rf_chan_resp_wake_due then returns the futex word to
 * wake (once; NULL when none is due), and the caller wakes it — with
 * io_uring's IORING_OP_FUTEX_WAKE (flags FUTEX2_SIZE_U32, shared) batched
 * into its next submit, or FUTEX_WAKE. The wake must not be dropped.
 */
void rf_chan_resp_defer_wakes(rf_chan_t *ch, int on);
uint32_t *rf_chan_resp_wake_due(rf_chan_t *ch);

/*
 * Whether waking up drains the eventfd (default on): a level-triggered
 * watcher (epoll) needs it; one that sees each write as an event
 * (io_uring's multishot poll) does not, and saves a read(2) per doorbell.
 * The executor's writes then add up in the counter: at one per doorbell it
 * cannot reach its limit.
 */
void rf_chan_resp_drain_bell(rf_chan_t *ch, int on);

/* Marks the channel broken (e.g. slot/gen mismatch found by the caller). */
void rf_chan_resp_set_broken(rf_chan_t *ch);
int rf_chan_resp_broken(const rf_chan_t *ch);

/* ---- executor side: single-threaded ---- */

/*
 * Next request-ring record: peek leaves it, next consumes it (use peek to
 * look for an ABORT of the running request without taking the next
 * REQUEST). The data stays valid until rf_chan_exec_release. Returns 1, 0
 * when empty, -EPROTO for a bad index or record.
 */
int rf_chan_exec_peek(rf_chan_t *ch, rf_chan_msg_t *m);
int rf_chan_exec_next(rf_chan_t *ch, rf_chan_msg_t *m);

/*
 * Frees the consumed request records' space. Call it when a request is done
 * with its params and body and before writing its END: the responder is not
 * told about freed request space otherwise, it infers it from the END.
 */
int rf_chan_exec_release(rf_chan_t *ch);

/*
 * Blocks until a request-ring record is readable: polls (opts.spin times),
 * then announces sleep and FUTEX_WAITs. No syscall when one is queued.
 * After a response that went beyond the response ring's first 64 KiB, it
 * calls rf_chan_exec_trim once it has waited 1 s (and every second until
 * the responder has read everything), so an idle executor does not keep
 * those pages. Returns 1, 0 on timeout (timeout_ms < 0: none), -EPROTO,
 * -EINTR.
 */
int rf_chan_exec_wait(rf_chan_t *ch, int timeout_ms);

/*
 * Gives back the response-ring pages beyond the first 64 KiB that were
 * written since the last trim (MADV_REMOVE: the memfd's pages are freed, in
 * the responder's mapping too), except the one at the write cursor. Only
 * when the responder has read everything. Returns the bytes given back
 * (0: nothing to do), -EAGAIN when unread records remain.
 */
long rf_chan_exec_trim(rf_chan_t *ch);

/*
 * Writes one response record; waits (doorbell) while the ring is full
 * unless nonblock, then returns -EAGAIN. len must not exceed
 * rf_chan_max_payload (else -E2BIG). Rings the responder if it sleeps, for
 * FLUSH and END only (and when the ring is full): STDOUT/STDERR records are
 * read when the request's next FLUSH or END arrives.
 * Returns 0, -EAGAIN, -E2BIG, -EPROTO.
 */
int rf_chan_exec_put(rf_chan_t *ch, uint32_t type, uint32_t slot, uint32_t gen, uint32_t arg0,
                     uint32_t arg1, const void *data, size_t len, int nonblock);

/* STDOUT/STDERR of any length: split into records, waiting for room. */
int rf_chan_exec_write(rf_chan_t *ch, uint32_t type, uint32_t slot, uint32_t gen, const void *data,
                       size_t len);

/* END of slot/gen with its statuses (waits for room). */
int rf_chan_exec_end(rf_chan_t *ch, uint32_t slot, uint32_t gen, uint32_t app_status,
                     uint32_t proto_status);

/* END flagged RF_CHAN_F_MORE (fastcgi_finish_request), and later the DONE
 * that says the script of slot/gen returned. */
int rf_chan_exec_end_more(rf_chan_t *ch, uint32_t slot, uint32_t gen, uint32_t app_status);
int rf_chan_exec_done(rf_chan_t *ch, uint32_t slot, uint32_t gen);

#ifdef __cplusplus
}
#endif

#endif
