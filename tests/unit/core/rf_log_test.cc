/*
 * Unit tests for core/rf_log.c: level names and parsing, syslog facility
 * names, php-fpm's rule for plain messages (whole below 2048 bytes, wrapped
 * at log_limit above), and the catch_workers_output stream (decoration,
 * wrapping at log_limit exactly as php-fpm's buffered zlog stream, partial
 * lines, the "\0fscf\0" flush command split across reads, pipe switches and
 * ", pipe is closed").
 */
#include "rf_log.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <string>
#include <syslog.h>
#include <unistd.h>
#include <vector>

namespace
{

/* Log into a pipe for the test's duration; lines() returns what came. */
class Capture
{
  public:
    Capture()
    {
        EXPECT_EQ(pipe2(fds_, O_NONBLOCK), 0);
        fcntl(fds_[1], F_SETPIPE_SZ, 1 << 20);
        rf_log_set_fd(fds_[1]);
        rf_log_set_level(RF_LOG_NOTICE);
        rf_log_set_limit(RF_LOG_LIMIT_DEFAULT);
    }
    ~Capture()
    {
        rf_log_set_fd(2);
        rf_log_set_limit(RF_LOG_LIMIT_DEFAULT);
        close(fds_[0]);
        close(fds_[1]);
    }
    std::vector<std::string> lines()
    {
        std::string all;
        char buf[65536];
        ssize_t n;
        while ((n = read(fds_[0], buf, sizeof(buf))) > 0)
            all.append(buf, (size_t)n);
        std::vector<std::string> out;
        size_t at = 0, nl;
        while ((nl = all.find('\n', at)) != std::string::npos) {
            out.push_back(all.substr(at, nl - at));
            at = nl + 1;
        }
        EXPECT_EQ(at, all.size()) << "a line without its newline";
        return out;
    }

  private:
    int fds_[2];
};

// "[29-Nov-2026 10:48:43] " at the start of a line (std::regex trips
// -Wmaybe-uninitialized inside libstdc++ in the sanitizer build).
bool timed(const std::string &l)
{
    static const char shape[] = "[dd-Aaa-dddd dd:dd:dd] ";
    if (l.size() < sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i + 1 < sizeof(shape); i++) {
        char c = l[i], want = shape[i];
        bool ok = want == 'd'   ? (c >= '0' && c <= '9')
                  : want == 'A' ? (c >= 'A' && c <= 'Z')
                  : want == 'a' ? (c >= 'a' && c <= 'z')
                                : c == want;
        if (!ok)
            return false;
    }
    return true;
}

std::string untimed(const std::string &l)
{
    return timed(l) ? l.substr(23) : l;
}

void feed(rf_log_stream_t *s, int is_stdout, const std::string &bytes)
{
    rf_log_stream_event(s, is_stdout);
    rf_log_stream_feed(s, bytes.data(), bytes.size());
}

} // namespace

TEST(Log, LevelsAsPhpFpm)
{
    EXPECT_EQ(rf_log_level_parse("WARN"), RF_LOG_WARNING);
    EXPECT_EQ(rf_log_level_parse("alert"), RF_LOG_ALERT);
    EXPECT_EQ(rf_log_level_parse("info"), -EINVAL);
    EXPECT_STREQ(rf_log_level_name(RF_LOG_ERROR), "ERROR");
    EXPECT_EQ(rf_log_facility_parse("daemon"), LOG_DAEMON);
    EXPECT_EQ(rf_log_facility_parse("Local7"), LOG_LOCAL7);
    EXPECT_EQ(rf_log_facility_parse("authpriv"), LOG_AUTHPRIV);
    EXPECT_EQ(rf_log_facility_parse("local8"), -EINVAL);
}

TEST(Log, BelowTheLevelIsDropped)
{
    Capture c;
    rf_log_set_level(RF_LOG_WARNING);
    rf_log(RF_LOG_NOTICE, "quiet");
    rf_log(RF_LOG_ERROR, "loud %d", 1);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_TRUE(timed(l[0]));
    EXPECT_EQ(untimed(l[0]), "ERROR: loud 1");
}

TEST(Log, PlainMessageUnder2048IsWholeWhateverLogLimit)
{
    /* php-fpm: a 1581-byte line with log_limit 1024 is written as is */
    Capture c;
    rf_log(RF_LOG_NOTICE, "%s", std::string(1500, 'a').c_str());
    auto l = c.lines();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(untimed(l[0]), "NOTICE: " + std::string(1500, 'a'));
}

TEST(Log, PlainMessageOver2048WrapsAtLogLimitNeverCut)
{
    Capture c;
    rf_log_set_limit(600);
    std::string msg(3000, 'b');
    msg[2999] = 'E';
    rf_log(RF_LOG_WARNING, "%s", msg.c_str());
    auto l = c.lines();
    ASSERT_GE(l.size(), 5u);
    std::string joined;
    for (auto &x : l) {
        EXPECT_LE(x.size() + 1, 600u);
        std::string u = untimed(x);
        ASSERT_EQ(u.rfind("WARNING: ", 0), 0u) << u;
        joined += u.substr(9);
    }
    EXPECT_EQ(joined, msg);
}

TEST(LogStream, DecoratedLinesAsPhpFpm)
{
    Capture c;
    rf_log_stream_t s;
    rf_log_stream_init(&s, "www", 1234, 1);
    feed(&s, 0, "hello\nwor");
    feed(&s, 0, "ld\n\n");
    feed(&s, 1, "out\n");
    rf_log_stream_close(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 4u);
    EXPECT_EQ(untimed(l[0]), "WARNING: [pool www] child 1234 said into stderr: \"hello\"");
    EXPECT_EQ(untimed(l[1]), "WARNING: [pool www] child 1234 said into stderr: \"world\"");
    EXPECT_EQ(untimed(l[2]), "WARNING: [pool www] child 1234 said into stderr: \"\"");
    EXPECT_EQ(untimed(l[3]), "WARNING: [pool www] child 1234 said into stdout: \"out\"");
}

TEST(LogStream, WrapsAtLogLimitEachLineExactlyLimitBytes)
{
    Capture c;
    rf_log_set_limit(512);
    rf_log_stream_t s;
    rf_log_stream_init(&s, "www", 7, 1);
    std::string text(1200, 'x');
    feed(&s, 0, text + "\n");
    rf_log_stream_close(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 3u);
    std::string joined;
    const std::string head = "WARNING: [pool www] child 7 said into stderr: \"";
    for (size_t i = 0; i < l.size(); i++) {
        if (i + 1 < l.size()) {
            EXPECT_EQ(l[i].size() + 1, 512u); /* newline included */
        }
        std::string u = untimed(l[i]);
        ASSERT_EQ(u.rfind(head, 0), 0u);
        ASSERT_EQ(u.back(), '"');
        joined += u.substr(head.size(), u.size() - head.size() - 1);
    }
    EXPECT_EQ(joined, text);
}

TEST(LogStream, ExactFitStillWrapsTheLastByte)
{
    /* php-fpm wraps when prefix + quote + text reaches the limit, leaving
     * room for the closing quote and the newline */
    Capture c;
    rf_log_set_limit(512);
    rf_log_stream_t s;
    rf_log_stream_init(&s, "www", 7, 0);
    feed(&s, 0, std::string(511, 'y') + "\n");
    rf_log_stream_close(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 1u); /* 511 + newline: fits */
    EXPECT_EQ(l[0].size(), 511u);
    rf_log_stream_init(&s, "www", 7, 0);
    feed(&s, 0, std::string(512, 'y') + "\n");
    rf_log_stream_close(&s);
    l = c.lines();
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].size(), 511u);
    EXPECT_EQ(l[1], "y");
}

TEST(LogStream, UndecoratedIsBareAndDropsEmptyLines)
{
    Capture c;
    rf_log_stream_t s;
    rf_log_stream_init(&s, "www", 7, 0);
    feed(&s, 0, "bare\n\nline\n");
    rf_log_stream_close(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0], "bare");
    EXPECT_EQ(l[1], "line");
}

TEST(LogStream, FlushCommandEndsALineAlsoSplitAcrossReads)
{
    Capture c;
    rf_log_stream_t s;
    rf_log_stream_init(&s, "www", 7, 0);
    feed(&s, 0, std::string("one\0fscf\0", 9) + std::string("two\0fs", 6));
    feed(&s, 0, std::string("cf\0", 3) + "three\n");
    feed(&s, 0, std::string("a\0b\n", 4));
    rf_log_stream_close(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 4u);
    EXPECT_EQ(l[0], "one");
    EXPECT_EQ(l[1], "two");
    EXPECT_EQ(l[2], "three");
    EXPECT_EQ(l[3], std::string("a\0b", 3));
}

TEST(LogStream, PartialLineAndPipeClosed)
{
    Capture c;
    rf_log_stream_t s;
    /* first event ends with EOF: php-fpm adds ", pipe is closed" */
    rf_log_stream_init(&s, "www", 9, 1);
    feed(&s, 0, "bye");
    rf_log_stream_eof(&s);
    rf_log_stream_close(&s);
    /* later: the partial line waits for the stream's close */
    rf_log_stream_init(&s, "www", 9, 1);
    feed(&s, 0, "a\n");
    feed(&s, 0, "tail");
    rf_log_stream_eof(&s);
    auto l = c.lines();
    ASSERT_EQ(l.size(), 2u);
    rf_log_stream_close(&s);
    auto m = c.lines();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(untimed(l[0]),
              "WARNING: [pool www] child 9 said into stderr: \"bye\", pipe is closed");
    EXPECT_EQ(untimed(l[1]), "WARNING: [pool www] child 9 said into stderr: \"a\"");
    EXPECT_EQ(untimed(m[0]), "WARNING: [pool www] child 9 said into stderr: \"tail\"");
}
