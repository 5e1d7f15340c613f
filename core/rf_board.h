/*
 * rf_board: the scoreboard — what php-fpm keeps in fpm_scoreboard.c, laid
 * out for ringfpm's processes. One MAP_SHARED | MAP_ANONYMOUS mapping that
 * the master creates before it forks anybody, so the responder and every
 * executor inherit it at the same address. Two kinds of record live in it,
 * each with exactly one writer at a time:
 *
 *   per pool and responder thread, the pool's counters as that thread sees
 *   them (rf_board_stats_t): written by that thread, summed by readers;
 *   per pool, a fixed table of process slots (rf_board_proc_t): the master
 *   takes a slot before it forks an executor and frees it once the executor
 *   is reaped; in between only that executor writes it.
 *
 * Writers use plain stores inside a per-record sequence counter (a seqlock:
 * odd while a write is in progress). A reader copies the record and keeps
 * the copy only when the count was even and unchanged around the copy, so
 * nobody ever waits on a lock and a writer needs no syscall. A writer that
 * dies in the middle of a write leaves only its own record unreadable until
 * the record's next write (the master's, when it frees the slot).
 *
 * The layout (pools, slot counts, offsets) is in the private handle, which
 * each process holds its own copy of after fork, never in the shared bytes:
 * a process that scribbles over the mapping can garble numbers and strings
 * but cannot steer another process's reads out of bounds. Readers also
 * treat every string as possibly unterminated and every number as unchecked.
 *
 * Threads: readers may run anywhere; writers only as ownership says above.
 */
#ifndef RF_BOARD_H
#define RF_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_BOARD_MAGIC 0x52464253u /* "RFBS" */

/* php-fpm's request stages (fpm_request.c), as the status page names them. */
enum rf_board_state {
    RF_BOARD_IDLE = 1,  /* "Idle": waiting for a request */
    RF_BOARD_READING,   /* "Reading headers" */
    RF_BOARD_INFO,      /* "Getting request information" */
    RF_BOARD_RUNNING,   /* "Running": the script runs */
    RF_BOARD_ENDING,    /* "Ending" */
    RF_BOARD_FINISHING, /* "Finishing": the script returned, request shutdown runs */
};

/* The stage's name, or "Unknown" for a value outside the enum. */
const char *rf_board_state_name(uint32_t state);

/* The string fields of a process slot: php-fpm's sizes, so long values are
 * cut where php-fpm cuts them (strlcpy into its scoreboard). */
#define RF_BOARD_METHOD_LEN 16
#define RF_BOARD_URI_LEN    128
#define RF_BOARD_QUERY_LEN  512
#define RF_BOARD_USER_LEN   32
#define RF_BOARD_SCRIPT_LEN 256

/* One executor's record. seq, used and start_time are the master's; the
 * rest is the executor's while used. */
typedef struct rf_board_proc {
    uint32_t seq;             /* seqlock */
    uint32_t used;            /* taken for a live executor */
    int32_t pid;              /* 0 until the master has forked it */
    uint32_t state;           /* enum rf_board_state */
    int64_t start_time;       /* epoch seconds: forked */
    uint64_t requests;        /* taken so far, the running one included */
    uint64_t req_start_us;    /* CLOCK_MONOTONIC: the current / last request began */
    uint64_t req_duration_us; /* the last request's wall time, set when its script ends */
    uint64_t req_cpu_us;      /* the last request's user + system cpu time */
    uint64_t req_memory;      /* the last request's peak memory (bytes) */
    uint64_t content_length;
    char method[RF_BOARD_METHOD_LEN];
    char uri[RF_BOARD_URI_LEN]; /* SCRIPT_NAME as PHP resolved it, no query */
    char query[RF_BOARD_QUERY_LEN];
    char user[RF_BOARD_USER_LEN]; /* HTTP auth user */
    char script[RF_BOARD_SCRIPT_LEN];
} rf_board_proc_t;

/* A pool's counters (php-fpm's scoreboard fields), from one responder
 * thread; readers get the sum over the threads. */
typedef struct rf_board_stats {
    uint64_t accepted_conn;
    uint64_t listen_queue; /* requests waiting for an executor */
    uint64_t max_listen_queue;
    uint64_t idle;
    uint64_t active;
    uint64_t total;
    uint64_t max_active;
    uint64_t max_children_reached;
    uint64_t slow_requests;
} rf_board_stats_t;

/* A pool as rf_board_create takes it; rf_board_pool() gives it back with
 * the strings copied and start_time filled in. */
typedef struct rf_board_pool {
    const char *name;
    const char *pm;            /* "static", "dynamic" or "ondemand" */
    uint32_t nslots;           /* process slots; 0 = none (no executors) */
    uint64_t listen_queue_len; /* the queue's capacity (php-fpm: the backlog) */
    int64_t start_time;        /* epoch seconds; set by rf_board_create */
} rf_board_pool_t;

typedef struct rf_board rf_board_t;

/*
 * Map a board for npools pools served by nthreads responder threads, all
 * counters zero and every slot free; start_time (epoch seconds) is every
 * pool's start. The caller keeps pools[]; the board copies what it needs.
 * Returns 0 with *out set, -EINVAL for a bad argument, -ENOMEM.
 */
int rf_board_create(rf_board_t **out, const rf_board_pool_t *pools, int npools, int nthreads,
                    int64_t start_time);

/* Unmap and free (NULL is fine). Other processes keep their mapping. */
void rf_board_destroy(rf_board_t *b);

/*
 * The same, on an existing board's memfd (a master re-executed for a
 * reload maps the board the responder and the running executors still
 * use): pools/npools/nthreads must describe the layout it was made with
 * (-EINVAL when the size differs). Takes fd in every case. No slot is
 * taken: rf_board_slot_adopt the ones in use.
 */
int rf_board_attach(rf_board_t **out, const rf_board_pool_t *pools, int npools, int nthreads,
                    int64_t start_time, int fd);

/* The memfd behind the board (close-on-exec), -1 when it is anonymous
 * memory. The board keeps it: do not close it. */
int rf_board_fd(const rf_board_t *b);

/* Mark a slot taken without touching it (an adopted executor's). 0 or -EINVAL. */
int rf_board_slot_adopt(rf_board_t *b, int pool, int slot);

int rf_board_npools(const rf_board_t *b);
int rf_board_nthreads(const rf_board_t *b);

/* Pool `pool` as created, or NULL when out of range. Owned by the board. */
const rf_board_pool_t *rf_board_pool_get(const rf_board_t *b, int pool);

/*
 * The process manager's name as this process shows it: the one the pool
 * was created with until rf_board_pool_set_pm (a reload changed it; pm:
 * 1 static, 2 dynamic, 3 ondemand, anything else is ignored). Any thread
 * may read while another sets; the names are constants, never freed.
 */
const char *rf_board_pm_name(int pm); /* the same numbers; NULL for others */
void rf_board_pool_set_pm(const rf_board_t *b, int pool, int pm);
const char *rf_board_pool_pm(const rf_board_t *b, int pool);

/* ---- the sequence counter ------------------------------------------------ */

/* Writer: before the first store of a record. An odd count left by a writer
 * that died mid-write moves on to the next odd value, so a reader that saw
 * the old one retries. */
static inline void rf_board_seq_write_begin(uint32_t *seq)
{
    uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, (s + 1) | 1u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Writer: after the last store. */
static inline void rf_board_seq_write_end(uint32_t *seq)
{
    uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
}

/* Reader: before copying; pass the value to rf_board_seq_read_retry. */
static inline uint32_t rf_board_seq_read_begin(const uint32_t *seq)
{
    return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

/* Reader: after copying; non-zero when the copy may be torn (a write was in
 * progress or happened meanwhile) and must be taken again. */
static inline int rf_board_seq_read_retry(const uint32_t *seq, uint32_t start)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return (start & 1u) || __atomic_load_n(seq, __ATOMIC_RELAXED) != start;
}

/* Copy len bytes of src (NULL = "") into a field of cap bytes, cut to
 * cap - 1 and NUL-terminated, as php-fpm's strlcpy does. */
void rf_board_strset(char *dst, size_t cap, const char *src, size_t len);

/* ---- responder threads --------------------------------------------------- */

/* Thread `thread` publishes its counters of `pool` (plain stores under the
 * block's seqlock; no syscall). Only that thread may call it. Out-of-range
 * pool or thread: nothing happens. */
void rf_board_stats_put(rf_board_t *b, int pool, int thread, const rf_board_stats_t *s);

/* The counters of `pool` summed over the threads, into *sum. Returns 0,
 * -EINVAL (pool out of range), or -EBUSY when a thread's block kept
 * changing (*sum then holds the blocks that could be read). Any thread,
 * any process. */
int rf_board_stats_get(const rf_board_t *b, int pool, rf_board_stats_t *sum);

/* ---- process slots ------------------------------------------------------- */

/*
 * Master: take a free slot of `pool` for an executor about to be forked,
 * reset it (Idle, no request, pid 0) and stamp start_time. Returns the slot
 * index, -ENOSPC when every slot is taken, -EINVAL. The master's own table
 * of taken slots decides, not the shared bytes.
 */
int rf_board_slot_alloc(rf_board_t *b, int pool, int64_t start_time);

/* Master: the executor of `slot` has pid `pid` (after fork, before the
 * executor can get its first request). */
void rf_board_slot_set_pid(rf_board_t *b, int pool, int slot, int pid);

/* Master: the executor of `slot` is reaped; the slot is free again.
 * Out-of-range or free slots are ignored. */
void rf_board_slot_free(rf_board_t *b, int pool, int slot);

/* The executor's own record to write (under rf_board_seq_write_begin/end),
 * or NULL when pool or slot is out of range. */
rf_board_proc_t *rf_board_slot(rf_board_t *b, int pool, int slot);

/*
 * Reader: a consistent copy of slot `slot` of `pool` into *out, strings
 * NUL-terminated within their fields. Returns 1 when the slot holds a live
 * executor (used, pid known), 0 when it does not, -EBUSY when it kept
 * changing (or its writer died mid-write), -EINVAL when out of range.
 */
int rf_board_proc_read(const rf_board_t *b, int pool, int slot, rf_board_proc_t *out);

/* Process slots of `pool` (0 when out of range). */
int rf_board_nslots(const rf_board_t *b, int pool);

/* A process record the way php-fpm shows it (fpm_status.c). */
typedef struct rf_board_proc_view {
    int pid;
    const char *state;
    int64_t start_time;
    int64_t start_since;
    uint64_t requests;
    /* µs: the last request's when Idle, else the running one's so far */
    uint64_t request_duration;
    const char *method; /* "-" when none */
    const char *uri;    /* may be "" */
    const char *query;  /* may be "" */
    uint64_t content_length;
    const char *user;             /* "-" when none */
    const char *script;           /* "-" when none */
    double last_request_cpu;      /* %, 0 unless Idle */
    uint64_t last_request_memory; /* bytes, 0 unless Idle */
} rf_board_proc_view_t;

/* Fill *v from the copy *p (rf_board_proc_read) at wall time now (epoch s)
 * and monotonic time now_us. The strings point into *p. */
void rf_board_proc_view(const rf_board_proc_t *p, int64_t now, uint64_t now_us,
                        rf_board_proc_view_t *v);

#ifdef __cplusplus
}
#endif

#endif
