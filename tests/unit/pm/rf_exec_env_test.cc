// Unit tests for pm/rf_exec_env.c: clear_env, env[] with "$NAME" taken from
// the environment before it is cleared, the first-entry-wins rule php-fpm
// 8.2 shows for a repeated name (env[A] = first / env[A] = second -> A=first,
// observed), and USER/HOME unless env[] sets them. Each case runs in a
// forked child, since it rewrites the process environment; the child sends
// back what it sees through a pipe.
#include "rf_exec_env.h"

#include <gtest/gtest.h>

#include "rf_test_child.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

namespace
{

// The whole environment, sorted, "A=1;B=2;".
std::string environment()
{
    std::vector<std::string> v;
    for (char **e = environ; e && *e; e++)
        v.push_back(*e);
    std::sort(v.begin(), v.end());
    std::string s;
    for (const std::string &x : v)
        s += x + ";";
    return s;
}

struct Pool {
    std::vector<std::string> keys, values;
    std::vector<int> kinds;
    std::vector<rf_conf_kv_t> kv;
    rf_conf_pool_t p;
    explicit Pool(int clear_env)
    {
        std::memset(&p, 0, sizeof(p));
        p.name = const_cast<char *>("www");
        p.clear_env = clear_env;
    }
    Pool &add(int kind, const char *key, const char *value)
    {
        kinds.push_back(kind);
        keys.push_back(key);
        values.push_back(value);
        return *this;
    }
    const rf_conf_pool_t *get()
    {
        kv.clear();
        for (size_t i = 0; i < keys.size(); i++)
            kv.push_back({kinds[i], const_cast<char *>(keys[i].c_str()),
                          const_cast<char *>(values[i].c_str())});
        p.kv = kv.data();
        p.nkv = kv.size();
        return &p;
    }
};

std::string apply(Pool &pool, const char *user = nullptr, const char *home = nullptr)
{
    return in_child([&]() {
        clearenv();
        setenv("MASTER_HOME", "/root", 1);
        setenv("KEEP", "k", 1);
        setenv("PATH", "/usr/bin:/bin", 1);
        char err[256] = "";
        int rc = rf_exec_env_apply(pool.get(), err, sizeof(err));
        if (rc < 0)
            return "rc=" + std::to_string(rc) + " " + err;
        rc = rf_exec_env_user(pool.get(), user, home, err, sizeof(err));
        if (rc < 0)
            return "rc=" + std::to_string(rc) + " " + err;
        return environment();
    });
}

TEST(ExecEnv, ClearEnvKeepsOnlyEnvEntries)
{
    Pool p(1);
    p.add(RF_KV_ENV, "PATH", "/usr/local/bin")
        .add(RF_KV_PHP_VALUE, "memory_limit", "1G") // not environment
        .add(RF_KV_ENV, "APP", "prod");
    EXPECT_EQ(apply(p), "APP=prod;PATH=/usr/local/bin;");
}

TEST(ExecEnv, NoClearEnvKeepsTheMastersEnvironment)
{
    Pool p(0);
    p.add(RF_KV_ENV, "APP", "prod").add(RF_KV_ENV, "KEEP", "changed");
    EXPECT_EQ(apply(p), "APP=prod;KEEP=changed;MASTER_HOME=/root;PATH=/usr/bin:/bin;");
}

TEST(ExecEnv, DollarValueTakenBeforeClearing)
{
    Pool p(1);
    p.add(RF_KV_ENV, "H", "$MASTER_HOME")
        .add(RF_KV_ENV, "P", "$PATH")
        .add(RF_KV_ENV, "UNSET", "$NOT_THERE") // "" as php-fpm
        .add(RF_KV_ENV, "MIDDLE", "a$PATH")    // only a leading '$' is special
        .add(RF_KV_ENV, "LONE", "$");          // getenv("") -> ""
    EXPECT_EQ(apply(p), "H=/root;LONE=;MIDDLE=a$PATH;P=/usr/bin:/bin;UNSET=;");
}

TEST(ExecEnv, FirstEntryOfARepeatedNameWins)
{
    Pool p(1);
    p.add(RF_KV_ENV, "A", "first").add(RF_KV_ENV, "B", "b").add(RF_KV_ENV, "A", "second");
    EXPECT_EQ(apply(p), "A=first;B=b;");
}

TEST(ExecEnv, UserAndHomeUnlessEnvSetsThem)
{
    Pool p(1);
    EXPECT_EQ(apply(p, "www-data", "/var/www"), "HOME=/var/www;USER=www-data;");

    Pool q(1);
    q.add(RF_KV_ENV, "USER", "me");
    EXPECT_EQ(apply(q, "www-data", "/var/www"), "HOME=/var/www;USER=me;");

    Pool r(1);
    r.add(RF_KV_ENV, "HOME", "/tmp");
    EXPECT_EQ(apply(r, "www-data", nullptr), "HOME=/tmp;USER=www-data;");
}

TEST(ExecEnv, NameSetenvRefusesIsSkipped)
{
    Pool p(1);
    p.add(RF_KV_ENV, "A=B", "x").add(RF_KV_ENV, "C", "y");
    EXPECT_EQ(apply(p), "C=y;");
}

} // namespace
