// rf_access: php-fpm's access.format, token by token, exact bytes; the
// formats php-fpm refuses, with its messages; access.suppress_path[].
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "rf_access.h"

namespace
{

struct Fixture {
    std::map<std::string, std::string> params, headers;
    rf_access_req_t r;

    Fixture()
    {
        memset(&r, 0, sizeof(r));
        r.method = "GET";
        r.uri = "/index.php";
        r.query = "a=1&b=2";
        r.script = "/srv/www/index.php";
        r.user = "alice";
        r.remote = "127.0.0.1";
        r.pool = "www";
        r.content_length = 42;
        r.status = 200;
        r.duration_us = 1234567;
        r.cpu_user_us = 300000;
        r.cpu_sys_us = 100000;
        r.memory = 3 * 1024 * 1024 + 512 * 1024;
        r.start_sec = 1700000000;
        r.now_sec = 1700000001;
        r.queue_us = 2500;
        r.pid = 4321;
        r.ppid = 1234;
        r.ctx = this;
        r.param = [](void *c, const char *n) -> const char * {
            auto &m = static_cast<Fixture *>(c)->params;
            auto it = m.find(n);
            return it == m.end() ? nullptr : it->second.c_str();
        };
        r.header = [](void *c, const char *n) -> const char * {
            auto &m = static_cast<Fixture *>(c)->headers;
            auto it = m.find(n);
            return it == m.end() ? nullptr : it->second.c_str();
        };
        params["REMOTE_ADDR"] = "10.0.0.9";
        params["EMPTY"] = "";
        headers["X-Id"] = "abc";
    }

    // The line for fmt without its newline; "<none>" when nothing is written.
    std::string line(const char *fmt)
    {
        rf_access_fmt_t *f = nullptr;
        char err[256] = "";
        int rc = rf_access_compile(fmt, &f, err, sizeof(err));
        EXPECT_EQ(rc, 0) << fmt << ": " << err;
        if (rc < 0)
            return "<error>";
        rf_access_buf_t b = {nullptr, 0, 0};
        long n = rf_access_format(f, &r, &b);
        rf_access_free(f);
        std::string s(b.p ? b.p : "", b.len);
        free(b.p);
        if (n == 0)
            return "<none>";
        EXPECT_EQ((size_t)n, s.size());
        EXPECT_EQ(s.back(), '\n');
        s.pop_back();
        return s;
    }
};

std::string refused(const char *fmt)
{
    rf_access_fmt_t *f = nullptr;
    char err[256] = "";
    int rc = rf_access_compile(fmt, &f, err, sizeof(err));
    EXPECT_EQ(rc, -EINVAL) << fmt;
    rf_access_free(f);
    return err;
}

} // namespace

TEST(AccessFormat, DefaultIsPhpFpms)
{
    setenv("TZ", "UTC", 1);
    tzset();
    Fixture x;
    EXPECT_EQ(x.line(nullptr),
              "127.0.0.1 - alice 14/Nov/2023:22:13:20 +0000 \"GET /index.php\" 200");
    x.r.user = nullptr; // two spaces, as php-fpm writes it
    EXPECT_EQ(x.line(RF_ACCESS_DEFAULT_FORMAT),
              "127.0.0.1 -  14/Nov/2023:22:13:20 +0000 \"GET /index.php\" 200");
}

TEST(AccessFormat, EverySimpleToken)
{
    Fixture x;
    EXPECT_EQ(x.line("%%"), "%");
    EXPECT_EQ(x.line("%f"), "/srv/www/index.php");
    EXPECT_EQ(x.line("%l"), "42");
    EXPECT_EQ(x.line("%m"), "GET");
    EXPECT_EQ(x.line("%n"), "www");
    EXPECT_EQ(x.line("%p %P"), "4321 1234");
    EXPECT_EQ(x.line("%q|%Q"), "a=1&b=2|?");
    EXPECT_EQ(x.line("%r"), "/index.php");
    EXPECT_EQ(x.line("%R"), "127.0.0.1");
    EXPECT_EQ(x.line("%s"), "200");
    EXPECT_EQ(x.line("%u"), "alice");
    EXPECT_EQ(x.line("%r%Q%q"), "/index.php?a=1&b=2");
}

TEST(AccessFormat, MissingValues)
{
    Fixture x;
    x.r.method = x.r.uri = x.r.query = x.r.script = x.r.user = x.r.remote = x.r.pool = nullptr;
    // php-fpm: "-" for %f %m %n %R; nothing for %q %Q %r %u
    EXPECT_EQ(x.line("[%f][%m][%n][%R][%q][%Q][%r][%u]"), "[-][-][-][-][][][][]");
    x.r.script = "";
    x.r.method = "";
    EXPECT_EQ(x.line("%f %m"), "- -");
}

TEST(AccessFormat, Duration)
{
    Fixture x;
    EXPECT_EQ(x.line("%d"), "1.235");
    EXPECT_EQ(x.line("%{seconds}d"), "1.235");
    EXPECT_EQ(x.line("%{SECONDS}d"), "1.235"); // php-fpm: strcasecmp
    for (const char *m : {"milli", "milliseconds", "mili", "miliseconds"})
        EXPECT_EQ(x.line((std::string("%{") + m + "}d").c_str()), "1234.567") << m;
    EXPECT_EQ(x.line("%{micro}d"), "1234567");
    EXPECT_EQ(x.line("%{microseconds}d"), "1234567");
    x.r.duration_us = 0;
    EXPECT_EQ(x.line("%d %{milli}d %{micro}d"), "0.000 0.000 0");
}

TEST(AccessFormat, QueueWaitIsRingfpmsW)
{
    Fixture x;
    EXPECT_EQ(x.line("%w"), "0.003");
    EXPECT_EQ(x.line("%{milli}w"), "2.500");
    EXPECT_EQ(x.line("%{micro}w"), "2500");
    x.r.queue_us = -1;
    EXPECT_EQ(x.line("%w %{micro}w"), "- -");
    EXPECT_EQ(refused("%{hours}w"), "only 'seconds', 'milli', 'milliseconds', 'micro' or "
                                    "'microseconds' are allowed as a modifier for %w ('hours')");
}

TEST(AccessFormat, Cpu)
{
    Fixture x;
    // 0.4 s of cpu in 1.234567 s
    EXPECT_EQ(x.line("%C"), "32.40");
    EXPECT_EQ(x.line("%{total}C"), "32.40");
    EXPECT_EQ(x.line("%{user}C"), "24.30");
    EXPECT_EQ(x.line("%{system}C"), "8.10");
    EXPECT_EQ(x.line("%{User}C"), "24.30");
    x.r.duration_us = 0; // php-fpm prints nan here
    EXPECT_EQ(x.line("%C"), "0.00");
}

TEST(AccessFormat, Memory)
{
    Fixture x;
    EXPECT_EQ(x.line("%M"), "3670016");
    EXPECT_EQ(x.line("%{bytes}M"), "3670016");
    EXPECT_EQ(x.line("%{kilo}M %{kilobytes}M"), "3584 3584");
    EXPECT_EQ(x.line("%{mega}M %{megabytes}M"), "3 3"); // truncated, as php-fpm
}

TEST(AccessFormat, ParamsAndHeaders)
{
    Fixture x;
    EXPECT_EQ(x.line("%{REMOTE_ADDR}e"), "10.0.0.9");
    EXPECT_EQ(x.line("%{NOPE}e"), "-");
    EXPECT_EQ(x.line("%{EMPTY}e"), "-");
    EXPECT_EQ(x.line("%{X-Id}o %{X-None}o"), "abc -");
    x.r.param = nullptr;
    x.r.header = nullptr;
    EXPECT_EQ(x.line("%{REMOTE_ADDR}e %{X-Id}o"), "- -");
}

TEST(AccessFormat, Times)
{
    setenv("TZ", "UTC", 1);
    tzset();
    Fixture x;
    EXPECT_EQ(x.line("%t"), "14/Nov/2023:22:13:20 +0000");
    EXPECT_EQ(x.line("%T"), "14/Nov/2023:22:13:21 +0000");
    EXPECT_EQ(x.line("%{%Y-%m-%dT%H:%M:%S}t"), "2023-11-14T22:13:20");
    EXPECT_EQ(x.line("%{%s}T"), "1700000001");
    // a long strftime result is not cut (php-fpm: 128 bytes)
    std::string fmt = "%{";
    for (int i = 0; i < 60; i++)
        fmt += "%Y";
    fmt += "}t";
    std::string want;
    for (int i = 0; i < 60; i++)
        want += "2023";
    EXPECT_EQ(x.line(fmt.c_str()), want);
}

TEST(AccessFormat, ValuesAreRawAndNeverTruncated)
{
    Fixture x;
    // php-fpm escapes nothing
    x.r.uri = "/a \"b\"\\c\td";
    EXPECT_EQ(x.line("\"%r\""), "\"/a \"b\"\\c\td\"");
    // and no 1024-byte limit (php-fpm's FPM_LOG_BUFFER) here
    std::string q(5000, 'q');
    x.r.query = q.c_str();
    std::string got = x.line("%m %r?%q end");
    EXPECT_EQ(got.size(), 4 + strlen(x.r.uri) + 1 + 5000 + 4);
    EXPECT_EQ(got.substr(got.size() - 4), " end");
}

TEST(AccessFormat, LiteralsAndEdges)
{
    Fixture x;
    EXPECT_EQ(x.line("plain text"), "plain text");
    EXPECT_EQ(x.line(""), "<none>");  // php-fpm writes no empty line
    EXPECT_EQ(x.line("%"), "<none>"); // a lone trailing % is dropped
    EXPECT_EQ(x.line("x%"), "x");
    EXPECT_EQ(x.line("100%% %s"), "100% 200");
    EXPECT_EQ(x.line("%{}d"), "1.235"); // an empty modifier is none
    EXPECT_EQ(x.line("%{}s"), "200");
    EXPECT_EQ(x.line("%{a}{micro}d"), "1234567"); // the last modifier counts
}

TEST(AccessFormat, RefusedLikePhpFpm)
{
    // messages: php-fpm 8.2's warnings for `php-fpm -t` [observed]
    EXPECT_EQ(refused("%Z"), "Invalid token in the access.format (%Z)");
    EXPECT_EQ(refused("%{x}s"), "embrace is not allowed for modifier %s");
    EXPECT_EQ(refused("%{a}%"), "embrace is not allowed for modifier %%");
    EXPECT_EQ(refused("%e"),
              "the name of the environment variable must be set between embraces for %e");
    EXPECT_EQ(refused("%o"), "the name of the header must be set between embraces for %o");
    EXPECT_EQ(refused("%{abc"), "missing closing embrace in the access.format");
    EXPECT_EQ(refused("%{abc}"), "missing closing embrace in the access.format");
    EXPECT_EQ(refused("%{bogus}d"), "only 'seconds', 'milli', 'milliseconds', 'micro' or "
                                    "'microseconds' are allowed as a modifier for %d ('bogus')");
    EXPECT_EQ(refused("%{bogus}C"),
              "only 'total', 'user' or 'system' are allowed as a modifier for %C ('bogus')");
    EXPECT_EQ(refused("%{bogus}M"), "only 'bytes', 'kilo', 'kilobytes', 'mega' or 'megabytes' "
                                    "are allowed as a modifier for %M ('bogus')");
}

TEST(AccessFormat, AppendsToTheBuffer)
{
    Fixture x;
    rf_access_fmt_t *f = nullptr;
    ASSERT_EQ(rf_access_compile("%s", &f, nullptr, 0), 0);
    rf_access_buf_t b = {nullptr, 0, 0};
    EXPECT_EQ(rf_access_format(f, &x.r, &b), 4);
    x.r.status = 404;
    EXPECT_EQ(rf_access_format(f, &x.r, &b), 4);
    EXPECT_EQ(std::string(b.p, b.len), "200\n404\n");
    free(b.p);
    rf_access_free(f);
}

TEST(AccessSuppress, OnlyPlain2xxGetOrHeadOfAnExactPath)
{
    Fixture x;
    const char *paths[] = {"/ping", "/index.php"};
    x.r.query = "";
    x.r.content_length = 0;
    EXPECT_TRUE(rf_access_suppressed(&x.r, paths, 2));
    EXPECT_FALSE(rf_access_suppressed(&x.r, paths, 0));
    x.r.method = "HEAD";
    EXPECT_TRUE(rf_access_suppressed(&x.r, paths, 2));
    x.r.status = 204;
    EXPECT_TRUE(rf_access_suppressed(&x.r, paths, 2));

    Fixture y = x;
    y.r.method = "POST";
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y = x;
    y.r.query = "a=1";
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y = x;
    y.r.status = 301;
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y.r.status = 199;
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y = x;
    y.r.content_length = 1;
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y = x;
    y.r.uri = "/index.php/";
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y.r.uri = "/INDEX.PHP";
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
    y.r.method = "get"; // php-fpm: strcmp
    y.r.uri = "/ping";
    EXPECT_FALSE(rf_access_suppressed(&y.r, paths, 2));
}
