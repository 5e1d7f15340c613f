// Unit tests for pm/rf_reload.c: the handoff a master writes for the master
// it re-executes into round-trips through a memfd, every malformed variant
// is refused with a reason (never half-read), and the fingerprint changes
// with what only a new responder can change and not with the process
// manager's numbers (those a reload applies in place).
#include "rf_reload.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rf_board.h"
#include "rf_ctl.h"
#include "rf_fpm_sockets.h"

namespace
{

int text_fd(const std::string &s)
{
    int fd = memfd_create("t", MFD_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, s.data(), s.size()), (ssize_t)s.size());
    return fd;
}

const char *kGood = "ringfpm-handoff 1\n"
                    "proto 2\nfingerprint 00000000deadbeef\n"
                    "responder 42\ngen 3\nnext_id 17\n"
                    "board 9 21 0\nctl 10 11\n"
                    "x 5 100 0 1 3 2 123456789 -1 -1\n";

TEST(Handoff, RoundTrip)
{
    uint32_t nslots[2] = {21, 0};
    int ctl[2] = {7, 8};
    rf_handoff_exec_t xs[2] = {{5, 100, 0, 1, 3, 2, 123456789ull, -1, -1},
                               {6, 101, 1, 0, -1, 3, 987654321ull, 12, 13}};
    rf_handoff_t h;
    memset(&h, 0, sizeof(h));
    h.proto = RF_CTL_PROTO;
    h.fingerprint = 0xfedcba9876543210ull;
    h.responder = 4242;
    h.gen = 3;
    h.next_id = 6;
    h.board_fd = 9;
    h.npools = 2;
    h.nslots = nslots;
    h.nthreads = 2;
    h.ctl = ctl;
    h.xs = xs;
    h.nxs = 2;
    int fd = rf_handoff_write(&h);
    ASSERT_GE(fd, 0);
    rf_handoff_t g;
    char err[256] = "";
    ASSERT_EQ(rf_handoff_read(fd, &g, err, sizeof(err)), 0) << err;
    EXPECT_EQ(g.proto, (uint32_t)RF_CTL_PROTO);
    EXPECT_EQ(g.fingerprint, h.fingerprint);
    EXPECT_EQ(g.responder, 4242);
    EXPECT_EQ(g.gen, 3u);
    EXPECT_EQ(g.next_id, 6u);
    EXPECT_EQ(g.board_fd, 9);
    ASSERT_EQ(g.npools, 2);
    EXPECT_EQ(g.nslots[0], 21u);
    EXPECT_EQ(g.nslots[1], 0u);
    ASSERT_EQ(g.nthreads, 2);
    EXPECT_EQ(g.ctl[1], 8);
    ASSERT_EQ(g.nxs, 2u);
    EXPECT_EQ(memcmp(&g.xs[0], &xs[0], sizeof(xs[0])), 0);
    EXPECT_EQ(memcmp(&g.xs[1], &xs[1], sizeof(xs[1])), 0);
    rf_handoff_free(&g);
}

TEST(Handoff, ReadsTheReferenceText)
{
    rf_handoff_t g;
    char err[256] = "";
    ASSERT_EQ(rf_handoff_read(text_fd(kGood), &g, err, sizeof(err)), 0) << err;
    EXPECT_EQ(g.fingerprint, 0xdeadbeefull);
    EXPECT_EQ(g.xs[0].started_ns, 123456789ull);
    rf_handoff_free(&g);
}

struct Bad {
    const char *what;
    std::string from, to; // replace `from` in kGood by `to`
    const char *reason;   // a part of the message
};

TEST(Handoff, RefusesMalformed)
{
    const Bad cases[] = {
        {"version", "ringfpm-handoff 1", "ringfpm-handoff 2", "not a ringfpm handoff"},
        {"unknown key", "gen 3\n", "gen 3\nzap 1\n", "unknown key 'zap'"},
        {"missing field", "next_id 17\n", "", "incomplete"},
        {"negative pid", "responder 42", "responder -4", "not a valid value"},
        {"junk after", "gen 3", "gen 3 4", "unexpected"},
        {"not a number", "next_id 17", "next_id x", "not a valid value"},
        {"pool out of range", "x 5 100 0 1", "x 5 100 2 1", "out of range"},
        {"thread out of range", "x 5 100 0 1", "x 5 100 0 2", "out of range"},
        {"short executor", "123456789 -1 -1", "123456789 -1", "missing"},
        {"no ctl sockets", "ctl 10 11", "ctl", "no control sockets"},
        {"bad fingerprint", "00000000deadbeef", "xyz", "bad fingerprint"},
        {"gen zero", "gen 3", "gen 0", "not a valid value"},
    };
    for (const Bad &b : cases) {
        std::string s = kGood;
        size_t at = s.find(b.from);
        ASSERT_NE(at, std::string::npos) << b.what;
        s.replace(at, b.from.size(), b.to);
        rf_handoff_t g;
        char err[256] = "";
        EXPECT_EQ(rf_handoff_read(text_fd(s), &g, err, sizeof(err)), -EINVAL) << b.what;
        EXPECT_NE(std::string(err).find(b.reason), std::string::npos) << b.what << ": " << err;
        EXPECT_EQ(g.xs, nullptr) << b.what;
        EXPECT_EQ(g.ctl, nullptr) << b.what;
    }
    rf_handoff_t g;
    char err[256] = "";
    EXPECT_EQ(
        rf_handoff_read(text_fd(std::string("ringfpm-handoff 1\n\0x", 20)), &g, err, sizeof(err)),
        -EINVAL);
    EXPECT_EQ(rf_handoff_read(text_fd(""), &g, err, sizeof(err)), -EINVAL);
}

TEST(Handoff, Fingerprint)
{
    rf_io_pool_t p[2];
    memset(p, 0, sizeof(p));
    p[0].name = "www";
    p[0].listen = "127.0.0.1:9000";
    p[0].max_children = 5;
    p[1].name = "api";
    p[1].listen = "/run/api.sock";
    rf_io_conf_t io;
    memset(&io, 0, sizeof(io));
    io.threads = 1;
    io.pools = p;
    io.npools = 2;
    uint64_t f0 = rf_reload_fingerprint(&io);
    EXPECT_EQ(rf_reload_fingerprint(&io), f0);
    p[0].max_children = 50; // applied in place by a reload
    p[0].queue_max = 7;
    p[0].pm = 3;
    EXPECT_EQ(rf_reload_fingerprint(&io), f0);
    p[0].listen = "127.0.0.1:9001";
    EXPECT_NE(rf_reload_fingerprint(&io), f0);
    p[0].listen = "127.0.0.1:9000";
    p[1].status_path = "/status";
    EXPECT_NE(rf_reload_fingerprint(&io), f0);
    p[1].status_path = nullptr;
    io.threads = 2;
    EXPECT_NE(rf_reload_fingerprint(&io), f0);
    io.threads = 1;
    io.npools = 1;
    EXPECT_NE(rf_reload_fingerprint(&io), f0);
}

// The board survives in a memfd: a second handle on its fd sees what the
// first wrote, and a layout that does not match is refused.
TEST(Handoff, BoardAttach)
{
    rf_board_pool_t pool = {"www", "static", 4, 0, 0};
    rf_board_t *a = nullptr, *b = nullptr;
    ASSERT_EQ(rf_board_create(&a, &pool, 1, 1, 1), 0);
    int fd = rf_board_fd(a);
    ASSERT_GE(fd, 0);
    int slot = rf_board_slot_alloc(a, 0, 1);
    ASSERT_GE(slot, 0);
    rf_board_slot_set_pid(a, 0, slot, 777);
    ASSERT_EQ(rf_board_attach(&b, &pool, 1, 1, 1, dup(fd)), 0);
    rf_board_proc_t seen;
    ASSERT_EQ(rf_board_proc_read(b, 0, slot, &seen), 1);
    EXPECT_EQ(seen.pid, 777);
    // b has not taken it: adopting makes the next allocation skip it
    EXPECT_EQ(rf_board_slot_adopt(b, 0, slot), 0);
    EXPECT_NE(rf_board_slot_alloc(b, 0, 1), slot);
    EXPECT_EQ(rf_board_slot_adopt(b, 0, 99), -EINVAL);
    rf_board_destroy(b);
    rf_board_pool_t other = pool;
    other.nslots = 5;
    EXPECT_EQ(rf_board_attach(&b, &other, 1, 1, 1, dup(fd)), -EINVAL);
    rf_board_destroy(a);
}

int tcp_listener(const char *ip, int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
        auto *in = reinterpret_cast<sockaddr_in *>(&ss);
        in->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &in->sin_addr);
        len = sizeof(*in);
    } else {
        auto *in6 = reinterpret_cast<sockaddr_in6 *>(&ss);
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
        len = sizeof(*in6);
    }
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&ss), len), 0);
    EXPECT_EQ(listen(fd, 4), 0);
    return fd;
}

std::string port_of(int fd)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    int port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port)
                                       : ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
    return std::to_string(port);
}

// php-fpm's keys, the environment's format, and the way back: only
// listening stream sockets are taken, each once, made close-on-exec.
TEST(FpmSockets, ExportAndTake)
{
    int v4 = tcp_listener("127.0.0.1", AF_INET);
    int v6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 ? tcp_listener("::", AF_INET6)
                                                                  : -1;
    char dir[] = "/tmp/rf-fpm-sockets-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/s.sock";
    int un = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
    ASSERT_EQ(bind(un, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)), 0);
    ASSERT_EQ(listen(un, 4), 0);
    int dgram = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    char key[256];
    ASSERT_EQ(rf_fpm_sockets_key(v4, key, sizeof(key)), 0);
    EXPECT_EQ(std::string(key), "127.0.0.1:" + port_of(v4));
    if (v6 >= 0) {
        ASSERT_EQ(rf_fpm_sockets_key(v6, key, sizeof(key)), 0);
        EXPECT_EQ(std::string(key), ":::" + port_of(v6)); // php-fpm: no brackets
    }
    ASSERT_EQ(rf_fpm_sockets_key(un, key, sizeof(key)), 0);
    EXPECT_EQ(std::string(key), path);
    EXPECT_EQ(rf_fpm_sockets_key(dgram, key, sizeof(key)), -EINVAL);
    EXPECT_LT(rf_fpm_sockets_key(-1, key, sizeof(key)), 0);

    std::vector<int> fds = {v4, un};
    if (v6 >= 0)
        fds.push_back(v6);
    ASSERT_EQ(rf_fpm_sockets_export(fds.data(), (int)fds.size()), 0);
    const char *env = getenv("FPM_SOCKETS");
    ASSERT_NE(env, nullptr);
    std::string want = "127.0.0.1:" + port_of(v4) + "=" + std::to_string(v4) + "," + path + "=" +
                       std::to_string(un);
    EXPECT_EQ(std::string(env).substr(0, want.size()), want);
    EXPECT_EQ(fcntl(v4, F_GETFD) & FD_CLOEXEC, 0); // inherited by the next image

    // a stale entry, a datagram socket and a repeat are not taken
    std::string more = std::string(env) + ",10.0.0.1:1=999,x=" + std::to_string(dgram) + "," +
                       std::string(key) + "=" + std::to_string(un) + ",garbage";
    setenv("FPM_SOCKETS", more.c_str(), 1);
    setenv("FPM_SOCKETS_1", ("/p=" + std::to_string(v4)).c_str(), 1);
    int *got = nullptr;
    int n = rf_fpm_sockets_take(&got);
    ASSERT_EQ(n, (int)fds.size());
    for (int i = 0; i < n; i++) {
        EXPECT_EQ(got[i], fds[i]);
        EXPECT_NE(fcntl(got[i], F_GETFD) & FD_CLOEXEC, 0);
    }
    free(got);
    rf_fpm_sockets_unset();
    EXPECT_EQ(getenv("FPM_SOCKETS"), nullptr);
    EXPECT_EQ(getenv("FPM_SOCKETS_1"), nullptr);
    EXPECT_EQ(rf_fpm_sockets_take(&got), 0);
    EXPECT_EQ(got, nullptr);
    for (int fd : fds)
        close(fd);
    close(dgram);
    unlink(path.c_str());
    rmdir(dir);
}

// More than 128 sockets spill into FPM_SOCKETS_1, as php-fpm's sets.
TEST(FpmSockets, SplitsIntoSets)
{
    std::vector<int> fds;
    for (int i = 0; i < RF_FPM_SOCKETS_SET + 3; i++)
        fds.push_back(tcp_listener("127.0.0.1", AF_INET));
    ASSERT_EQ(rf_fpm_sockets_export(fds.data(), (int)fds.size()), 0);
    std::string first = getenv("FPM_SOCKETS"), second = getenv("FPM_SOCKETS_1");
    EXPECT_EQ(std::count(first.begin(), first.end(), ','), RF_FPM_SOCKETS_SET - 1);
    EXPECT_EQ(std::count(second.begin(), second.end(), ','), 2);
    int *got = nullptr;
    EXPECT_EQ(rf_fpm_sockets_take(&got), (int)fds.size());
    free(got);
    rf_fpm_sockets_unset();
    for (int fd : fds)
        close(fd);
}

} // namespace
