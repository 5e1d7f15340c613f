// Unit tests for pm/rf_proctitle.c: after rf_proctitle_init with the real
// argc/argv of this test binary, rf_proctitle_set shows in
// /proc/self/cmdline and /proc/self/comm, argv and the environment stay
// usable, and a title longer than the area is cut at the area. Each case
// runs in a forked child so the test runner keeps its own command line.
// main's argc/argv come from glibc, which passes them to .init_array
// functions (gtest edits that array afterwards, see real_argv).
#include "rf_proctitle.h"

#include <gtest/gtest.h>

#include "rf_test_child.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace
{

int g_argc;
char **g_argv;

void grab_args(int argc, char **argv, char **)
{
    g_argc = argc;
    g_argv = argv;
}

__attribute__((section(".init_array"), used)) void (*grab_args_ptr)(int, char **,
                                                                    char **) = grab_args;

std::string slurp(const char *path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// main's argv as the kernel laid it out. gtest's InitGoogleTest removes its
// own flags from the array glibc handed over (shifting the pointers and
// ending it early), so rebuild it from the strings themselves: they start
// at argv[0] and follow one another, as many as /proc/self/cmdline has.
char **real_argv(int *argc)
{
    std::string cmd = slurp("/proc/self/cmdline");
    int n = static_cast<int>(std::count(cmd.begin(), cmd.end(), '\0'));
    char **v = static_cast<char **>(calloc(static_cast<size_t>(n) + 1, sizeof(char *)));
    char *s = g_argv[0];
    for (int i = 0; i < n; i++) {
        v[i] = s;
        s += strlen(s) + 1;
    }
    *argc = n;
    return v;
}

// Whether argv[0] is where the kernel reads /proc/self/cmdline from
// (arg_start, field 48 of /proc/self/stat). Not so under valgrind, which
// builds the program's argv itself: nothing to test then.
bool argv_is_the_kernels()
{
    std::string st = slurp("/proc/self/stat");
    size_t paren = st.rfind(')');
    if (paren == std::string::npos)
        return false;
    std::istringstream fields(st.substr(paren + 2)); // from field 3 on
    std::string f;
    for (int i = 3; i <= 48 && (fields >> f); i++)
        if (i == 48)
            return std::stoull(f) == reinterpret_cast<uintptr_t>(g_argv[0]);
    return false;
}

TEST(Proctitle, ShowsInCmdlineAndComm)
{
    if (!argv_is_the_kernels())
        GTEST_SKIP() << "argv is not the kernel's (valgrind?)";
    ASSERT_GT(g_argc, 0);
    ASSERT_NE(g_argv, nullptr);
    std::string r = in_child([]() -> std::string {
        std::string argv0 = g_argv[0];
        const char *path = getenv("PATH");
        std::string path_before = path ? path : "";

        int argc;
        char **argv = real_argv(&argc);
        rf_proctitle_init(argc, argv);
        if (rf_proctitle_room() < argv0.size())
            return "room " + std::to_string(rf_proctitle_room()) + " < argv[0]";
        rf_proctitle_set("pool %s", "www");

        std::string cmd = slurp("/proc/self/cmdline");
        std::string title = "ringfpm: pool www";
        if (cmd.compare(0, title.size() + 1, std::string(title) + '\0') != 0)
            return "cmdline '" + cmd.substr(0, 64) + "'";
        if (cmd.find_first_not_of('\0', title.size()) != std::string::npos)
            return "cmdline not NUL-padded";
        // comm is left alone (pidof / pgrep -x / ps -C keep finding it)
        std::string comm = slurp("/proc/self/comm");
        if (comm != "rf_unit\n")
            return "comm '" + comm + "'";
        // argv and the environment were moved, not lost
        if (argv0 != argv[0])
            return "argv[0] now '" + std::string(argv[0]) + "'";
        path = getenv("PATH");
        if ((path ? path : "") != path_before)
            return "PATH changed";
        if (setenv("RF_PROCTITLE_TEST", "1", 1) < 0 || !getenv("RF_PROCTITLE_TEST"))
            return "setenv";
        if (std::string(program_invocation_name) != argv0)
            return "program_invocation_name";
        return "";
    });
    EXPECT_EQ(r, "");
}

// What /proc/self/cmdline shows of a title: up to its first NUL.
std::string shown()
{
    std::string cmd = slurp("/proc/self/cmdline");
    return cmd.substr(0, cmd.find('\0'));
}

TEST(Proctitle, LongTitleIsCutAtTheArea)
{
    if (!argv_is_the_kernels())
        GTEST_SKIP() << "argv is not the kernel's (valgrind?)";
    std::string r = in_child([]() -> std::string {
        int argc;
        char **argv = real_argv(&argc);
        rf_proctitle_init(argc, argv);
        size_t room = rf_proctitle_room();
        if (room < 9)
            return "room " + std::to_string(room);
        // Once the last byte of the argv strings is no longer NUL the
        // kernel reads the title on into the environment area, up to the
        // first NUL but at most one page.
        size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        rf_proctitle_set("%s", std::string(room + 5000, 'x').c_str());
        std::string want = "ringfpm: " + std::string(room - 9, 'x');
        if (shown() != want.substr(0, page))
            return "shown " + std::to_string(shown().size()) + " bytes, room " +
                   std::to_string(room);
        // a shorter title after a long one: no leftovers
        std::string title = "ringfpm: master process (/etc/php/8.2/fpm/php-fpm.conf)";
        rf_proctitle_set("master process (%s)", "/etc/php/8.2/fpm/php-fpm.conf");
        if (shown() != title.substr(0, room))
            return "second title '" + shown() + "', room " + std::to_string(room);
        return "";
    });
    EXPECT_EQ(r, "");
}

TEST(Proctitle, WithoutInitNothingChanges)
{
    std::string r = in_child([]() -> std::string {
        std::string before = slurp("/proc/self/cmdline");
        rf_proctitle_set("pool %s", "x");
        if (slurp("/proc/self/cmdline") != before)
            return "cmdline changed";
        if (slurp("/proc/self/comm") != "rf_unit\n")
            return "comm";
        return "";
    });
    EXPECT_EQ(r, "");
}

} // namespace
