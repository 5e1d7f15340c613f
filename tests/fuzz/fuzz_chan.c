/*
 * libFuzzer target for the responder side of pm/rf_chan.c. The input plays
 * a malicious executor: a script of operations that scribble bytes anywhere
 * in the shared mapping (indices, doorbells, ring contents), publish
 * well-formed records through the real executor API, or make the responder
 * send, read, release and arm. Whatever the executor writes, the responder
 * must never crash, never hand out a record outside its ring, and once it
 * reports -EPROTO it must keep doing so. The mapping is followed by a
 * PROT_NONE guard page, so an overread faults instead of passing silently.
 *
 * Script: a sequence of ops, each one opcode byte then its operands:
 *   0 poke:   u16 offset into the mapping, u8 n, n bytes
 *   1 index:  u8 which (resp_prod, req_cons, exec_bell, resp_bell), u32 value
 *   2 record: u8 type, u16 len, u16 flags written raw at resp_prod, then
 *             resp_prod advanced by u16 amount
 *   3 put:    u8 type, u8 len: a legitimate record through the executor API
 *   4 read:   u8 count: rf_chan_resp_next up to count times
 *   5 release
 *   6 send:   u8 len: a request of len params bytes
 *   7 arm / disarm
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "rf_fuzz.h"
#include "rf_chan.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} cursor_t;

static int take(cursor_t *c, void *out, size_t n)
{
    if (c->n < n)
        return 0;
    memcpy(out, c->p, n);
    c->p += n;
    c->n -= n;
    return 1;
}

/* A record handed to the responder must lie inside the response ring. */
static void check_msg(const rf_chan_layout_t *l, const rf_chan_msg_t *m)
{
    const uint8_t *lo = l->resp_ring, *hi = l->resp_ring + l->resp_size;
    volatile uint8_t sink = 0;

    CHECK(m->type >= RF_CHAN_STDOUT && m->type <= RF_CHAN_END);
    CHECK(m->data >= lo + 32 && m->data <= hi);
    CHECK(m->len <= (size_t)(hi - m->data));
    CHECK(m->len <= rf_chan_max_payload(l->resp_size));
    if (m->type != RF_CHAN_STDOUT && m->type != RF_CHAN_STDERR)
        CHECK(m->len == 0);
    for (uint32_t i = 0; i < m->len; i++) /* touch every byte: the guard page catches overreads */
        sink ^= m->data[i];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rf_chan_opts_t o = {.req_ring_size = 4096, .resp_ring_size = 4096};
    rf_chan_t *exec = NULL, *resp = NULL;
    rf_chan_layout_t l;
    cursor_t c = {data, size};
    uint8_t op, payload[256];
    int broken = 0;

    memset(payload, 'p', sizeof(payload));
    CHECK(rf_chan_create(&o, &exec) == 0);
    CHECK(rf_chan_open(rf_chan_fd(exec), -1, &o, &resp) == 0);
    rf_chan_layout(resp, &l);

    while (take(&c, &op, 1)) {
        int r = 0;

        switch (op % 8) {
        case 0: {
            uint16_t off;
            uint8_t n;
            if (!take(&c, &off, 2) || !take(&c, &n, 1) || c.n < n)
                goto out;
            size_t at = off % l.map_len;
            size_t k = n < l.map_len - at ? n : l.map_len - at;
            memcpy(l.map + at, c.p, k);
            c.p += n;
            c.n -= n;
            break;
        }
        case 1: {
            uint8_t which;
            uint32_t v;
            uint32_t *w[4] = {l.resp_prod, l.req_cons, l.exec_bell, l.resp_bell};
            if (!take(&c, &which, 1) || !take(&c, &v, 4))
                goto out;
            *w[which % 4] = v;
            break;
        }
        case 2: {
            uint8_t type;
            uint16_t len, flags, adv;
            if (!take(&c, &type, 1) || !take(&c, &len, 2) || !take(&c, &flags, 2) ||
                !take(&c, &adv, 2))
                goto out;
            uint32_t prod = *l.resp_prod;
            uint8_t *h = l.resp_ring + (prod & (l.resp_size - 1) & ~31u);
            uint32_t len32 = len;
            uint16_t t16 = type;
            memcpy(h, &len32, 4);
            memcpy(h + 4, &t16, 2);
            memcpy(h + 6, &flags, 2);
            *l.resp_prod = prod + adv;
            break;
        }
        case 3: {
            uint8_t type, len;
            if (!take(&c, &type, 1) || !take(&c, &len, 1))
                goto out;
            uint32_t t = RF_CHAN_STDOUT + type % 4;
            size_t n = (t == RF_CHAN_STDOUT || t == RF_CHAN_STDERR) ? len : 0;
            /* The executor's own view may be corrupt too: any result is fine. */
            (void)rf_chan_exec_put(exec, t, 1, 2, 0, 0, payload, n, 1);
            break;
        }
        case 4: {
            uint8_t count;
            if (!take(&c, &count, 1))
                goto out;
            for (int i = 0; i <= count % 16; i++) {
                rf_chan_msg_t m;
                r = (i & 1) ? rf_chan_resp_peek(resp, &m) : rf_chan_resp_next(resp, &m);
                if (r == 1)
                    check_msg(&l, &m);
                if (r <= 0)
                    break;
            }
            break;
        }
        case 5:
            r = rf_chan_resp_release(resp);
            break;
        case 6: {
            uint8_t len;
            if (!take(&c, &len, 1))
                goto out;
            rf_chan_req_t rq = {.slot = 1, .gen = 2, .params_len = len};
            struct iovec iov = {payload, len};
            r = rf_chan_resp_send_request(resp, &rq, &iov, 1);
            CHECK(r == 0 || r == -ENOBUFS || r == -EPROTO);
            break;
        }
        case 7: {
            uint32_t *ua = NULL, val = 0;
            r = rf_chan_resp_arm(resp, &ua, &val);
            if (r == 0)
                CHECK(ua == l.resp_bell && val != 0);
            rf_chan_resp_disarm(resp);
            break;
        }
        }
        if (r == -EPROTO)
            broken = 1;
        CHECK(!!rf_chan_resp_broken(resp) == broken);
        if (broken) {
            rf_chan_msg_t m;
            CHECK(rf_chan_resp_next(resp, &m) == -EPROTO);
        }
    }
out:
    rf_chan_destroy(resp);
    rf_chan_destroy(exec);
    return 0;
}
