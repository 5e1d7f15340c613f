// Unit tests for pm/rf_conf.c: the pool array directives (env[], php_value[],
// php_flag[], php_admin_value[], php_admin_flag[], access.suppress_path[]),
// ringfpm's executor/queue directives, pool rlimit_*, process.dumpable and
// php-fpm's pm.* checks. Error texts, flag normalisation, check order and
// the -tt lines (newest first) were checked against php-fpm8.2 -t/-tt when
// written. Each config goes through a temp file and rf_conf_load.
#include "rf_conf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace
{

struct Loaded {
    int rc = 0;
    std::string err;
    std::string path;
    rf_conf_t conf;
    Loaded()
    {
        std::memset(&conf, 0, sizeof(conf));
    }
    Loaded(const Loaded &) = delete;
    Loaded &operator=(const Loaded &) = delete;
    ~Loaded()
    {
        rf_conf_free(&conf); // after a failed load too, as rf_main does
        if (!path.empty())
            unlink(path.c_str());
    }
    const rf_conf_pool_t &pool(int i = 0) const
    {
        return conf.pools[i];
    }
    // "[<file>:<line>] <text>" as rf_conf reports an error at a line.
    std::string at(int line, const std::string &text) const
    {
        return "[" + path + ":" + std::to_string(line) + "] " + text;
    }
};

const char *const kBase = "[global]\n"                 // line 1
                          "[www]\n"                    // line 2
                          "listen = 127.0.0.1:9000\n"; // line 3; the caller's text starts at 4

// flags: rf_conf_load's; the tests run as root, so by default as with -R.
void load(Loaded &l, const std::string &text, bool with_base = true, int flags = RF_CONF_ALLOW_ROOT,
          const char *prefix = nullptr)
{
    char tmpl[] = "/tmp/rf_conf_test.XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    l.path = tmpl;
    std::string all = (with_base ? std::string(kBase) : std::string()) + text;
    ASSERT_EQ(write(fd, all.data(), all.size()), static_cast<ssize_t>(all.size()));
    close(fd);
    char err[1024];
    std::memset(err, 'x', sizeof(err));
    l.rc = rf_conf_load(&l.conf, l.path.c_str(), prefix, flags, err, sizeof(err));
    l.err = l.rc < 0 ? err : "";
}

std::string kind_name(int kind)
{
    switch (kind) {
    case RF_KV_ENV:
        return "env";
    case RF_KV_PHP_VALUE:
        return "php_value";
    case RF_KV_PHP_FLAG:
        return "php_flag";
    case RF_KV_PHP_ADMIN_VALUE:
        return "php_admin_value";
    case RF_KV_PHP_ADMIN_FLAG:
        return "php_admin_flag";
    case RF_KV_SUPPRESS_PATH:
        return "access.suppress_path";
    }
    return "?" + std::to_string(kind);
}

std::vector<std::string> kvs(const rf_conf_pool_t &p)
{
    std::vector<std::string> v;
    for (size_t i = 0; i < p.nkv; i++)
        v.push_back(kind_name(p.kv[i].kind) + "[" + p.kv[i].key + "]=" + p.kv[i].value);
    return v;
}

void collect(void *ctx, const char *line)
{
    static_cast<std::vector<std::string> *>(ctx)->push_back(line);
}

std::vector<std::string> dump(const rf_conf_t &c)
{
    std::vector<std::string> lines;
    rf_conf_dump(&c, collect, &lines);
    return lines;
}

// Whether -tt prints this line (any section).
bool dumped(const rf_conf_t &c, const std::string &line)
{
    std::vector<std::string> all = dump(c);
    return std::find(all.begin(), all.end(), line) != all.end();
}

// The dumped lines of the pool sections that start with a tab + prefix.
std::vector<std::string> dump_lines(const rf_conf_t &c, const std::string &prefix)
{
    std::vector<std::string> out;
    bool in_pool = false;
    for (const std::string &l : dump(c)) {
        if (l[0] == '[')
            in_pool = l != "[global]";
        else if (in_pool && l.compare(0, prefix.size() + 1, "\t" + prefix) == 0)
            out.push_back(l.substr(1));
    }
    return out;
}

std::string ignored(const rf_conf_pool_t &p)
{
    return p.ignored ? p.ignored : "";
}

// The error of a config whose caller text starts at line 4.
std::string error_of(const std::string &text)
{
    Loaded l;
    load(l, text);
    EXPECT_LT(l.rc, 0) << text;
    return l.err;
}

// ---------------------------------------------------------------- arrays

TEST(ConfArrays, StoredInFileOrderWithKinds)
{
    Loaded l;
    load(l, "env[PATH] = /usr/bin\n"
            "php_value[memory_limit] = 32M\n"
            "php_flag[display_errors] = on\n"
            "php_admin_value[error_log] = /var/log/x.log\n"
            "php_admin_flag[log_errors] = off\n"
            "access.suppress_path[] = /ping\n"
            "env[PATH] = /bin\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(kvs(l.pool()), (std::vector<std::string>{
                                 "env[PATH]=/usr/bin",
                                 "php_value[memory_limit]=32M",
                                 "php_flag[display_errors]=1",
                                 "php_admin_value[error_log]=/var/log/x.log",
                                 "php_admin_flag[log_errors]=0",
                                 "access.suppress_path[]=/ping",
                                 "env[PATH]=/bin",
                             }));
}

TEST(ConfArrays, FlagsNormalisedAsPhpFpm)
{
    Loaded l;
    load(l, "php_flag[a] = on\n"
            "php_flag[b] = yes\n"
            "php_flag[c] = true\n"
            "php_flag[d] = 1\n"
            "php_flag[e] = off\n"
            "php_flag[f] = no\n"
            "php_flag[g] = false\n"
            "php_flag[h] = 0\n"
            "php_flag[i] = \"\"\n"
            "php_admin_flag[j] = \"on\"\n"
            "php_admin_flag[k] = none\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(kvs(l.pool()), (std::vector<std::string>{
                                 "php_flag[a]=1",
                                 "php_flag[b]=1",
                                 "php_flag[c]=1",
                                 "php_flag[d]=1",
                                 "php_flag[e]=0",
                                 "php_flag[f]=0",
                                 "php_flag[g]=0",
                                 "php_flag[h]=0",
                                 "php_flag[i]=0",
                                 "php_admin_flag[j]=1",
                                 "php_admin_flag[k]=0",
                             }));
}

TEST(ConfArrays, ValuesKeptAsGivenPoolExpandedInValuesOnly)
{
    Loaded l;
    load(l, "env[HOME_OF_MASTER] = $HOME\n"
            "env[P] = $pool-x\n"
            "env[D] = \"$\"\n"
            "php_value[$pool] = 1\n"
            "php_value[error_log] = /var/log/$pool.log\n"
            "php_value[empty] = \"\"\n"
            "php_value[error_reporting] = E_ALL & ~E_NOTICE\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(kvs(l.pool()), (std::vector<std::string>{
                                 "env[HOME_OF_MASTER]=$HOME",
                                 "env[P]=www-x",
                                 "env[D]=$",
                                 "php_value[$pool]=1",
                                 "php_value[error_log]=/var/log/www.log",
                                 "php_value[empty]=",
                                 "php_value[error_reporting]=32759",
                             }));
}

TEST(ConfArrays, ReopenedPoolAppends)
{
    Loaded l;
    load(l, "env[A] = 1\n"
            "[other]\n"
            "listen = 127.0.0.1:9001\n"
            "env[B] = 2\n"
            "[WWW]\n"
            "env[C] = 3\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(kvs(l.pool(0)), (std::vector<std::string>{"env[A]=1", "env[C]=3"}));
    EXPECT_EQ(kvs(l.pool(1)), (std::vector<std::string>{"env[B]=2"}));
}

TEST(ConfArrays, EnvAndPhpValuesAreNoLongerNamedAsIgnored)
{
    Loaded l;
    load(l, "env[A] = 1\n"
            "php_value[x] = 1\n"
            "php_flag[y] = on\n"
            "php_admin_value[z] = 1\n"
            "php_admin_flag[w] = off\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(ignored(l.pool()), "");

    Loaded s;
    load(s, "access.suppress_path[] = /ping\n");
    ASSERT_EQ(s.rc, 0) << s.err;
    EXPECT_EQ(ignored(s.pool()), ""); /* acted on with access.log */
}

TEST(ConfArrays, Errors)
{
    auto err = [](const std::string &text, int line, const std::string &msg) {
        Loaded x;
        load(x, text);
        EXPECT_LT(x.rc, 0) << text;
        EXPECT_EQ(x.err, x.at(line, msg)) << text;
    };
    err("env[] = x\n", 4, "You must provide a key for field 'env'");
    err("php_value[] = x\n", 4, "You must provide a key for field 'php_value'");
    err("php_flag[] = 1\n", 4, "You must provide a key for field 'php_flag'");
    err("php_admin_value[] = x\n", 4, "You must provide a key for field 'php_admin_value'");
    err("foo[] = 1\n", 4, "You must provide a key for field 'foo'");
    err("env[X] = \"\"\n", 4, "empty value");
    err("php_flag[x] = maybe\n", 4, "error while parsing 'php_flag[x]' : invalid boolean value");
    err("php_admin_flag[x] = $pool\n", 4,
        "error while parsing 'php_admin_flag[x]' : invalid boolean value");
    err("php_Value[x] = 1\n", 4, "unknown directive 'php_Value'");
    err("foo[x] = 1\n", 4, "unknown directive 'foo'");
    err("access.suppress_path[x] = /a\n", 4,
        "Keys provided to field 'access.suppress_path' are ignored");
    err("access.suppress_path[] = a\n", 4,
        "Values provided to field 'access.suppress_path' must begin with '/'");
    err("access.suppress_path[] = \"\"\n", 4,
        "Values provided to field 'access.suppress_path' must begin with '/'");
}

TEST(ConfArrays, NotInGlobal)
{
    // php-fpm checks the key before the section, the section before the name
    Loaded a;
    load(a, "[global]\nenv[X] = 1\n", false);
    EXPECT_EQ(a.err, a.at(2, "Array are not allowed in the global section"));
    Loaded b;
    load(b, "[global]\nfoo[x] = 1\n", false);
    EXPECT_EQ(b.err, b.at(2, "Array are not allowed in the global section"));
    Loaded c;
    load(c, "[global]\nenv[] = 1\n", false);
    EXPECT_EQ(c.err, c.at(2, "You must provide a key for field 'env'"));
    Loaded d;
    load(d, "access.suppress_path[] = /a\n[www]\nlisten = 127.0.0.1:9000\n", false);
    EXPECT_EQ(d.err, d.at(1, "Array are not allowed in the global section"));
}

TEST(ConfArrays, DumpedAsPhpFpmNewestFirst)
{
    Loaded l;
    load(l, "env[A] = first\n"
            "env[B] = $HOME\n"
            "env[A] = second\n"
            "php_value[memory_limit] = 32M\n"
            "php_flag[display_errors] = on\n"
            "php_admin_value[memory_limit] = 64M\n"
            "php_admin_flag[log_errors] = off\n"
            "php_value[memory_limit] = 48M\n"
            "access.suppress_path[] = /ping\n"
            "access.suppress_path[] = /status\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    // php-fpm8.2 -tt prints exactly these lines for this pool, in this order
    std::vector<std::string> want = {
        "access.format = undefined",
        "access.suppress_path[] = /status",
        "access.suppress_path[] = /ping",
        "slowlog = undefined",
    };
    std::vector<std::string> all;
    for (const std::string &line : dump(l.conf))
        all.push_back(line[0] == '\t' ? line.substr(1) : line);
    auto pos = std::find(all.begin(), all.end(), want[0]);
    ASSERT_NE(pos, all.end());
    EXPECT_EQ(std::vector<std::string>(pos, pos + 4), want);

    want = {
        "security.limit_extensions = .php .phar",
        "env[A] = second",
        "env[B] = $HOME",
        "env[A] = first",
        "php_value[memory_limit] = 48M",
        "php_value[display_errors] = 1",
        "php_value[memory_limit] = 32M",
        "php_admin_value[log_errors] = 0",
        "php_admin_value[memory_limit] = 64M",
    };
    pos = std::find(all.begin(), all.end(), want[0]);
    ASSERT_NE(pos, all.end());
    ASSERT_GE(all.end() - pos, static_cast<long>(want.size()));
    EXPECT_EQ(std::vector<std::string>(pos, pos + static_cast<long>(want.size())), want);
}

// ------------------------------------------------- ringfpm's new directives

TEST(ConfExecutor, Defaults)
{
    Loaded l;
    load(l, "");
    ASSERT_EQ(l.rc, 0) << l.err;
    const rf_conf_pool_t &p = l.pool();
    EXPECT_EQ(p.executor_type, RF_EXEC_PHP);
    EXPECT_EQ(p.queue_max, 4096);
    EXPECT_EQ(p.queue_timeout_ms, 60000);
    EXPECT_EQ(p.overload_fcgi, 0);
    EXPECT_EQ(p.exec_ncpu, 0);
    EXPECT_EQ(p.exec_cpu_list, nullptr);
    EXPECT_EQ(p.exec_cpu_spread, 0);
    EXPECT_EQ(p.rlimit_files, 0);
    EXPECT_EQ(p.rlimit_core, 0);
    EXPECT_EQ(p.process_dumpable, 0);
    EXPECT_EQ(p.nkv, 0u);
    EXPECT_STREQ(p.security_limit_extensions, ".php .phar");
    EXPECT_EQ(dump_lines(l.conf, "executor."),
              (std::vector<std::string>{"executor.type = php", "executor.cpu_list = undefined"}));
    EXPECT_EQ(
        dump_lines(l.conf, "request.queue"),
        (std::vector<std::string>{"request.queue_max = 4096", "request.queue_timeout = 60000ms"}));
    EXPECT_EQ(dump_lines(l.conf, "request.overload"),
              (std::vector<std::string>{"request.overload = 503"}));

    // the built-in default (no file) gets the same
    rf_conf_t c;
    char err[256];
    ASSERT_EQ(rf_conf_load(&c, nullptr, nullptr, RF_CONF_ALLOW_ROOT, err, sizeof(err)), 0) << err;
    EXPECT_EQ(c.pools[0].queue_max, 4096);
    EXPECT_EQ(c.pools[0].queue_timeout_ms, 60000);
    EXPECT_EQ(c.pools[0].executor_type, RF_EXEC_PHP);
    rf_conf_free(&c);
}

TEST(ConfExecutor, Values)
{
    Loaded l;
    load(l, "executor.type = BUILTIN\n"
            "request.queue_max = 0\n"
            "request.queue_timeout = 250ms\n"
            "request.overload = overloaded\n"
            "executor.cpu_list = 0-2,5\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    const rf_conf_pool_t &p = l.pool();
    EXPECT_EQ(p.executor_type, RF_EXEC_BUILTIN);
    EXPECT_EQ(p.queue_max, 0);
    EXPECT_EQ(p.queue_timeout_ms, 250);
    EXPECT_EQ(p.overload_fcgi, 1);
    ASSERT_EQ(p.exec_ncpu, 4);
    EXPECT_EQ(std::vector<int>(p.exec_cpu_list, p.exec_cpu_list + 4),
              (std::vector<int>{0, 1, 2, 5}));
    EXPECT_EQ(p.exec_cpu_spread, 0);
    EXPECT_EQ(dump_lines(l.conf, "executor."),
              (std::vector<std::string>{"executor.type = builtin", "executor.cpu_list = 0,1,2,5"}));
    EXPECT_EQ(dump_lines(l.conf, "request.queue"),
              (std::vector<std::string>{"request.queue_max = 0", "request.queue_timeout = 250ms"}));
    EXPECT_EQ(dump_lines(l.conf, "request.overload"),
              (std::vector<std::string>{"request.overload = overloaded"}));

    Loaded t;
    load(t, "request.queue_timeout = 0\nrequest.overload = 503\nrequest.queue_max = 2147483647\n"
            "executor.type = php\n");
    ASSERT_EQ(t.rc, 0) << t.err;
    EXPECT_EQ(t.pool().queue_timeout_ms, 0);
    EXPECT_EQ(t.pool().overload_fcgi, 0);
    EXPECT_EQ(t.pool().queue_max, 2147483647L);
    EXPECT_EQ(t.pool().executor_type, RF_EXEC_PHP);

    Loaded m;
    load(m, "request.queue_timeout = 2m\n");
    ASSERT_EQ(m.rc, 0) << m.err;
    EXPECT_EQ(m.pool().queue_timeout_ms, 120000);
}

TEST(ConfExecutor, CpuSpread)
{
    Loaded a;
    load(a, "executor.cpu_list = spread\n");
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_EQ(a.pool().exec_cpu_spread, 1);
    EXPECT_EQ(a.pool().exec_ncpu, 0);
    EXPECT_EQ(dump_lines(a.conf, "executor.cpu_list"),
              (std::vector<std::string>{"executor.cpu_list = spread"}));

    for (const char *v : {"spread 1-2", "spread:1-2", "spread,1,2", "SPREAD 1,2"}) {
        Loaded b;
        load(b, std::string("executor.cpu_list = \"") + v + "\"\n");
        ASSERT_EQ(b.rc, 0) << v << ": " << b.err;
        EXPECT_EQ(b.pool().exec_cpu_spread, 1) << v;
        ASSERT_EQ(b.pool().exec_ncpu, 2) << v;
        EXPECT_EQ(b.pool().exec_cpu_list[0], 1) << v;
        EXPECT_EQ(b.pool().exec_cpu_list[1], 2) << v;
        EXPECT_EQ(dump_lines(b.conf, "executor.cpu_list"),
                  (std::vector<std::string>{"executor.cpu_list = spread 1,2"}))
            << v;
    }

    // a later value replaces an earlier one entirely
    Loaded c;
    load(c, "executor.cpu_list = spread 3\nexecutor.cpu_list = 0,1\n");
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_EQ(c.pool().exec_cpu_spread, 0);
    EXPECT_EQ(c.pool().exec_ncpu, 2);
}

TEST(ConfExecutor, Errors)
{
    auto err = [](const std::string &text, const std::string &msg) {
        Loaded x;
        load(x, text);
        EXPECT_LT(x.rc, 0) << text;
        EXPECT_EQ(x.err, x.at(4, msg)) << text;
    };
    err("executor.type = perl\n", "'executor.type' must be php or builtin, not 'perl'");
    err("request.queue_max = -1\n",
        "'-1' is not a valid number for 'request.queue_max' (0 to 2147483647)");
    err("request.queue_max = 12k\n",
        "'12k' is not a valid number for 'request.queue_max' (0 to 2147483647)");
    err("request.queue_max = 2147483648\n",
        "'2147483648' is not a valid number for 'request.queue_max' (0 to 2147483647)");
    err("request.queue_max = \"\"\n",
        "'' is not a valid number for 'request.queue_max' (0 to 2147483647)");
    err("request.queue_timeout = 5x\n", "invalid time value '5x' for 'request.queue_timeout'");
    err("request.queue_timeout = -1\n", "invalid time value '-1' for 'request.queue_timeout'");
    err("request.overload = 502\n", "'request.overload' must be 503 or overloaded, not '502'");
    err("executor.cpu_list = spreadx\n",
        "invalid cpu list 'spreadx' for 'executor.cpu_list' (e.g. 0-3, 0,2,4, spread or "
        "spread 0-3)");
    err("executor.cpu_list = 3-1\n",
        "invalid cpu list '3-1' for 'executor.cpu_list' (e.g. 0-3, 0,2,4, spread or "
        "spread 0-3)");
    err("executor.cpu_list = \"spread x\"\n",
        "invalid cpu list 'spread x' for 'executor.cpu_list' (e.g. 0-3, 0,2,4, spread or "
        "spread 0-3)");
}

TEST(ConfExecutor, PoolOnly)
{
    Loaded l;
    load(l, "[global]\nrequest.queue_max = 1\n[www]\nlisten = 127.0.0.1:9000\n", false);
    EXPECT_EQ(l.err, l.at(2, "unknown entry 'request.queue_max'"));
}

// ----------------------------------------- rlimit_*, process.dumpable (pool)

TEST(ConfPoolUnix, RlimitsAndDumpable)
{
    Loaded l;
    load(l, "rlimit_files = 4096\nrlimit_core = unlimited\nprocess.dumpable = yes\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.pool().rlimit_files, 4096);
    EXPECT_EQ(l.pool().rlimit_core, -1);
    EXPECT_EQ(l.pool().process_dumpable, 1);
    EXPECT_EQ(dump_lines(l.conf, "rlimit_"),
              (std::vector<std::string>{"rlimit_files = 4096", "rlimit_core = -1"}));
    EXPECT_EQ(dump_lines(l.conf, "process.dumpable"),
              (std::vector<std::string>{"process.dumpable = yes"}));
    // acted on by the executors: never named in the startup warning
    EXPECT_EQ(ignored(l.pool()).find("rlimit_files"), std::string::npos);

    Loaded c;
    load(c, "rlimit_core = 0\nrlimit_core = 1024\n");
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_EQ(c.pool().rlimit_core, 1024);

    // the global rlimit_files stays the master's
    Loaded g;
    load(g, "[global]\nrlimit_files = 100\n[www]\nlisten = 127.0.0.1:9000\nrlimit_files = 200\n",
         false);
    ASSERT_EQ(g.rc, 0) << g.err;
    EXPECT_EQ(g.conf.rlimit_files, 100);
    EXPECT_EQ(g.pool().rlimit_files, 200);
}

TEST(ConfPoolUnix, RlimitErrors)
{
    std::string e = error_of("rlimit_core = -1\n");
    EXPECT_EQ(e.substr(e.find("] ")),
              "] unable to parse value for entry 'rlimit_core': must be greater than zero or "
              "'unlimited'");
    e = error_of("rlimit_core = lots\n");
    EXPECT_EQ(e.substr(e.find("] ")), "] unable to parse value for entry 'rlimit_core': is not a "
                                      "valid number (greater or equal than zero)");
    e = error_of("rlimit_files = abc\n");
    EXPECT_EQ(e.substr(e.find("] ")), "] 'abc' is not a valid number for 'rlimit_files'");
}

// ------------------------------------------------------------ pm.* checks

TEST(ConfPm, MaxChildren)
{
    EXPECT_EQ(error_of("pm = static\n"), "[pool www] pm.max_children must be a positive value");
    EXPECT_EQ(error_of("pm = ondemand\npm.max_children = 0\n"),
              "[pool www] pm.max_children must be a positive value");
    EXPECT_EQ(error_of("pm = dynamic\npm.max_children = -3\n"),
              "[pool www] pm.max_children must be a positive value");
}

TEST(ConfPm, DynamicStartServersDefault)
{
    Loaded l;
    load(l, "pm = dynamic\npm.max_children = 10\npm.min_spare_servers = 2\n"
            "pm.max_spare_servers = 7\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.pool().pm_start_servers, 2 + (7 - 2) / 2);

    Loaded s;
    load(s, "pm = dynamic\npm.max_children = 10\npm.min_spare_servers = 2\n"
            "pm.max_spare_servers = 7\npm.start_servers = 7\n");
    ASSERT_EQ(s.rc, 0) << s.err;
    EXPECT_EQ(s.pool().pm_start_servers, 7);
}

TEST(ConfPm, DynamicErrors)
{
    const std::string dyn = "pm = dynamic\npm.max_children = 5\n";
    EXPECT_EQ(error_of(dyn + "pm.max_spare_servers = 3\n"),
              "[pool www] pm.min_spare_servers(0) must be a positive value");
    EXPECT_EQ(error_of(dyn + "pm.min_spare_servers = 1\n"),
              "[pool www] pm.max_spare_servers(0) must be a positive value");
    EXPECT_EQ(error_of(dyn + "pm.min_spare_servers = 1\npm.max_spare_servers = 6\n"),
              "[pool www] pm.min_spare_servers(1) and pm.max_spare_servers(6) cannot be greater "
              "than pm.max_children(5)");
    EXPECT_EQ(error_of(dyn + "pm.min_spare_servers = 3\npm.max_spare_servers = 2\n"),
              "[pool www] pm.max_spare_servers(2) must not be less than pm.min_spare_servers(3)");
    EXPECT_EQ(error_of(dyn + "pm.min_spare_servers = 2\npm.max_spare_servers = 3\n"
                             "pm.start_servers = 4\n"),
              "[pool www] pm.start_servers(4) must not be less than pm.min_spare_servers(2) and "
              "not greater than pm.max_spare_servers(3)");
    EXPECT_EQ(error_of(dyn + "pm.min_spare_servers = 1\npm.max_spare_servers = 3\n"
                             "pm.max_spawn_rate = 0\n"),
              "[pool www] pm.max_spawn_rate must be a positive value");
}

TEST(ConfPm, SpawnRateOnlyCheckedForDynamic)
{
    Loaded l; // php-fpm 8.2 accepts it for static
    load(l, "pm = static\npm.max_children = 2\npm.max_spawn_rate = 0\n");
    EXPECT_EQ(l.rc, 0) << l.err;
}

TEST(ConfPm, Ondemand)
{
    EXPECT_EQ(error_of("pm = ondemand\npm.max_children = 2\npm.process_idle_timeout = 0\n"),
              "[pool www] pm.process_idle_timeout(0s) must be greater than 0s");
    Loaded l;
    load(l, "pm = ondemand\npm.max_children = 2\npm.min_spare_servers = 1\n"
            "pm.max_spare_servers = 1\npm.start_servers = 1\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.pool().pm_start_servers, 0);
    EXPECT_EQ(l.pool().pm_min_spare_servers, 0);
    EXPECT_EQ(l.pool().pm_max_spare_servers, 0);
}

TEST(ConfPm, NoPmStillAccepted)
{
    // ringfpm-only pools (executor.type = builtin, the engine tests) have no pm
    Loaded l;
    load(l, "executor.type = builtin\n");
    EXPECT_EQ(l.rc, 0) << l.err;
}

} // namespace

// ------------------------------------------------- process.priority, global rlimit_core

TEST(ConfPriority, UnsetIsUndefinedAndValuesAreKept)
{
    Loaded l;
    load(l, "");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.conf.process_priority, RF_CONF_PRIORITY_UNSET);
    EXPECT_EQ(l.pool().process_priority, RF_CONF_PRIORITY_UNSET);
    EXPECT_EQ(dump_lines(l.conf, "process.priority"),
              (std::vector<std::string>{"process.priority = undefined"}));
    EXPECT_TRUE(dumped(l.conf, "\tprocess.priority = undefined")); // [global]

    Loaded v;
    load(v,
         "[global]\nprocess.priority = -19\n[www]\nlisten = 127.0.0.1:9000\n"
         "process.priority = 20\n",
         false);
    ASSERT_EQ(v.rc, 0) << v.err;
    EXPECT_EQ(v.conf.process_priority, -19);
    EXPECT_EQ(v.pool().process_priority, 20);
    EXPECT_EQ(dump_lines(v.conf, "process.priority"),
              (std::vector<std::string>{"process.priority = 20"}));
    // acted on: never named in the startup warning
    EXPECT_EQ(ignored(v.pool()), "");
    EXPECT_EQ(v.conf.ignored, nullptr);
}

TEST(ConfPriority, RangeAndSyntaxErrorsAsPhpFpm)
{
    EXPECT_EQ(error_of("process.priority = 21\n"),
              "[pool www] process.priority must be included into [-19,20]");
    EXPECT_EQ(error_of("process.priority = -20\n"),
              "[pool www] process.priority must be included into [-19,20]");
    std::string e = error_of("process.priority = +5\n");
    EXPECT_EQ(e.substr(e.find("] ")), "] unable to parse value for entry 'process.priority': is "
                                      "not a valid number (greater or equal than zero)");
    Loaded g;
    load(g, "[global]\nprocess.priority = 21\n[www]\nlisten = 127.0.0.1:9000\n", false);
    EXPECT_LT(g.rc, 0);
    EXPECT_EQ(g.err, "process.priority must be included into [-19,20]");
}

// events.mechanism: what a Linux php-fpm accepts, any case; -tt shows the
// mechanism in lower case, epoll when unset; anything else fails as
// php-fpm's post-processing does.
TEST(ConfGlobal, EventsMechanismAsPhpFpm)
{
    for (const char *v : {"epoll", "EPOLL", "poll", "Select"}) {
        Loaded l;
        load(l,
             std::string("[global]\nevents.mechanism = ") + v +
                 "\n[www]\nlisten = 127.0.0.1:9000\n",
             false);
        ASSERT_EQ(l.rc, 0) << v << ": " << l.err;
        std::string want = v;
        for (auto &ch : want)
            ch = (char)tolower((unsigned char)ch);
        EXPECT_TRUE(dumped(l.conf, "\tevents.mechanism = " + want)) << v;
        EXPECT_EQ(l.conf.ignored, nullptr) << v;
    }
    Loaded unset;
    load(unset, "[global]\n[www]\nlisten = 127.0.0.1:9000\n", false);
    ASSERT_EQ(unset.rc, 0) << unset.err;
    EXPECT_TRUE(dumped(unset.conf, "\tevents.mechanism = epoll"));
    for (const char *v : {"kqueue", "/dev/poll", "port", "foo", ""}) {
        Loaded bad;
        load(bad,
             std::string("[global]\nevents.mechanism = ") + v +
                 "\n[www]\nlisten = 127.0.0.1:9000\n",
             false);
        EXPECT_LT(bad.rc, 0) << v;
        EXPECT_EQ(bad.err, "failed to post process the configuration") << v;
    }
}

TEST(ConfGlobal, RlimitCoreIsTheMasters)
{
    Loaded l;
    load(l,
         "[global]\nrlimit_core = unlimited\n[www]\nlisten = 127.0.0.1:9000\n"
         "rlimit_core = 7\n",
         false);
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(l.conf.rlimit_core, -1);
    EXPECT_EQ(l.pool().rlimit_core, 7);
    EXPECT_EQ(l.conf.ignored, nullptr);
    EXPECT_TRUE(dumped(l.conf, "\trlimit_core = -1"));

    Loaded bad;
    load(bad, "[global]\nrlimit_core = -5\n[www]\nlisten = 127.0.0.1:9000\n", false);
    EXPECT_EQ(bad.err, bad.at(2, "unable to parse value for entry 'rlimit_core': must be greater "
                                 "than zero or 'unlimited'"));
}

// ------------------------------------------------------------ running as root

TEST(ConfRoot, PhpPoolWithoutUserNeedsAllowRoot)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "not root";
    Loaded l;
    load(l, "", true, 0);
    EXPECT_LT(l.rc, 0);
    EXPECT_EQ(l.err, "failed to post process the configuration");
    // before the listen check, as php-fpm
    Loaded n;
    load(n, "[www]\npm = static\n", false, 0);
    EXPECT_EQ(n.err, "failed to post process the configuration");

    Loaded u;
    load(u, "user = www-data\n", true, 0);
    EXPECT_EQ(u.rc, 0) << u.err;
    Loaded r; // a root user is refused at start-up, not here (php-fpm -t passes it)
    load(r, "user = root\n", true, 0);
    EXPECT_EQ(r.rc, 0) << r.err;
    Loaded b; // a builtin pool runs no PHP
    load(b, "executor.type = builtin\n", true, 0);
    EXPECT_EQ(b.rc, 0) << b.err;
    Loaded a;
    load(a, "", true, RF_CONF_ALLOW_ROOT);
    EXPECT_EQ(a.rc, 0) << a.err;
}

// ------------------------------------------------------------ access.format

TEST(ConfAccessFormat, CheckedAtLoadWhenThereIsAnAccessLog)
{
    EXPECT_EQ(error_of("access.log = /tmp/x.log\naccess.format = \"%Z\"\n"),
              "[pool www] wrong format for access.format '%Z'");
    EXPECT_EQ(error_of("access.log = /tmp/x.log\naccess.format = \"%{foo}d\"\n"),
              "[pool www] wrong format for access.format '%{foo}d'");
    // php-fpm does not look at the format without a log
    Loaded n;
    load(n, "access.format = \"%Z\"\n");
    EXPECT_EQ(n.rc, 0) << n.err;
    // with a log and no format, php-fpm's default (-tt shows it)
    Loaded d;
    load(d, "access.log = /tmp/x.log\n");
    ASSERT_EQ(d.rc, 0) << d.err;
    EXPECT_STREQ(d.pool().access_format, "%R - %u %t \"%m %r\" %s");
}

// ------------------------------------------------------------ relative paths

class ConfPaths : public ::testing::Test
{
  protected:
    std::string dir;
    void SetUp() override
    {
        char tmpl[] = "/tmp/rf_conf_paths.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        ASSERT_EQ(mkdir((dir + "/wd").c_str(), 0755), 0);
        ASSERT_EQ(mkdir((dir + "/sub").c_str(), 0755), 0);
        ASSERT_EQ(mkdir((dir + "/sub/wd").c_str(), 0755), 0);
    }
    void TearDown() override
    {
        rmdir((dir + "/sub/wd").c_str());
        rmdir((dir + "/sub").c_str());
        rmdir((dir + "/wd").c_str());
        rmdir(dir.c_str());
    }
};

TEST_F(ConfPaths, UnderThePoolPrefix)
{
    Loaded l;
    load(l,
         "[global]\n[www]\nprefix = " + dir +
             "\nlisten = www.sock\naccess.log = log/$pool.acc\nslowlog = slow.log\n"
             "chdir = wd\nphp_admin_value[error_log] = php.err\n"
             "php_value[sendmail_path] = sendmail -t\nphp_value[session.save_path] = sess\n"
             "php_admin_value[extension_dir] = /abs\n",
         false);
    ASSERT_EQ(l.rc, 0) << l.err;
    const rf_conf_pool_t &p = l.pool();
    EXPECT_EQ(std::string(p.listen), dir + "/www.sock");
    EXPECT_EQ(std::string(p.access_log), dir + "/log/www.acc");
    EXPECT_EQ(std::string(p.slowlog), dir + "/slow.log");
    EXPECT_EQ(std::string(p.chdir), dir + "/wd");
    EXPECT_EQ(kvs(p), (std::vector<std::string>{
                          "php_admin_value[error_log]=" + dir + "/php.err",
                          "php_value[sendmail_path]=" + dir + "/sendmail -t",
                          "php_value[session.save_path]=sess", // not a path php-fpm expands
                          "php_admin_value[extension_dir]=/abs",
                      }));
    EXPECT_EQ(ignored(p), ""); // prefix is acted on
}

TEST_F(ConfPaths, UnderTheGlobalPrefixThenUsr)
{
    Loaded g;
    load(g,
         "[global]\n[www]\nlisten = 127.0.0.1:9000\naccess.log = a.log\nprefix = sub\n"
         "chdir = wd\n",
         false, RF_CONF_ALLOW_ROOT, dir.c_str());
    ASSERT_EQ(g.rc, 0) << g.err;
    EXPECT_EQ(std::string(g.pool().prefix), dir + "/sub");
    EXPECT_EQ(std::string(g.pool().access_log), dir + "/sub/a.log");
    EXPECT_EQ(std::string(g.pool().chdir), dir + "/sub/wd");

    Loaded u; // no prefix at all: /usr, as php-fpm's PHP_PREFIX
    load(u, "access.log = log/x.acc\nphp_value[error_log] = syslog\n"
            "php_admin_value[error_log] = syslog\n");
    ASSERT_EQ(u.rc, 0) << u.err;
    EXPECT_STREQ(u.pool().access_log, "/usr/log/x.acc");
    // php-fpm spares only php_admin_value[error_log] = syslog
    EXPECT_EQ(kvs(u.pool()), (std::vector<std::string>{"php_value[error_log]=/usr/syslog",
                                                       "php_admin_value[error_log]=syslog"}));
}

TEST_F(ConfPaths, ListenUnixOnlyWhenNotAnInetAddress)
{
    const char *const cases[][2] = {
        {"9000", "9000"},
        {"127.0.0.1:9000", "127.0.0.1:9000"},
        {"[::1]:9000", "[::1]:9000"},
        {"localhost", "/usr/localhost"}, // php-fpm: no ':' and not a number = a unix path
        {"/run/x.sock", "/run/x.sock"},
    };
    for (const auto &c : cases) {
        Loaded l;
        load(l, std::string("[www]\nlisten = ") + c[0] + "\n", false);
        ASSERT_EQ(l.rc, 0) << l.err;
        EXPECT_STREQ(l.pool().listen, c[1]) << c[0];
    }
}

TEST_F(ConfPaths, ChrootAndChdirChecks)
{
    EXPECT_EQ(error_of("prefix = " + dir + "/nope\n"),
              "[pool www] the prefix '" + dir + "/nope' does not exist or is not a directory");
    EXPECT_EQ(error_of("chdir = " + dir + "/nope\n"),
              "[pool www] the chdir path '" + dir + "/nope' does not exist or is not a directory");
    EXPECT_EQ(error_of("chroot = " + dir + "/nope\n"),
              "[pool www] the chroot path '" + dir + "/nope' does not exist or is not a directory");
    EXPECT_EQ(error_of("chroot = " + dir + "\nchdir = /nope\n"),
              "[pool www] the chdir path '/nope' within the chroot path '" + dir + "' ('" + dir +
                  "//nope') does not exist or is not a directory");

    // $prefix at the start of chroot; chdir inside it; php values untouched
    Loaded l;
    load(l, "prefix = " + dir +
                "\nchroot = $prefix/sub\nchdir = /wd\n"
                "php_admin_value[error_log] = log/x\n");
    ASSERT_EQ(l.rc, 0) << l.err;
    EXPECT_EQ(std::string(l.pool().chroot), dir + "//sub");
    EXPECT_STREQ(l.pool().chdir, "/wd");
    EXPECT_EQ(kvs(l.pool()), (std::vector<std::string>{"php_admin_value[error_log]=log/x"}));
}

TEST(ConfFullPath, AbsoluteAndNullAreLeftAlone)
{
    rf_conf_t c;
    std::memset(&c, 0, sizeof(c));
    char *p = nullptr;
    EXPECT_EQ(rf_conf_full_path(&p, &c, nullptr, 0), 0);
    EXPECT_EQ(p, nullptr);
    p = strdup("/a/b");
    EXPECT_EQ(rf_conf_full_path(&p, &c, nullptr, 0), 0);
    EXPECT_STREQ(p, "/a/b");
    free(p);
    p = strdup("$prefix");
    EXPECT_EQ(rf_conf_full_path(&p, &c, nullptr, 1), 0);
    EXPECT_STREQ(p, "/usr");
    free(p);
}
