// in_child: run a function in a forked child and collect what it returns,
// for unit tests of code that changes process-wide state (the environment,
// the command line) the test runner must keep.
#ifndef RF_TEST_CHILD_H
#define RF_TEST_CHILD_H

#include <functional>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

// Run f in a child process; returns what f returned (sent back through a
// pipe), or "CHILD FAILED " followed by whatever arrived when the child did
// not exit with status 0.
inline std::string in_child(const std::function<std::string()> &f)
{
    int fds[2];
    if (pipe(fds) < 0)
        return "PIPE FAILED";
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return "FORK FAILED";
    }
    if (pid == 0) {
        close(fds[0]);
        std::string out = f();
        size_t off = 0;
        while (off < out.size()) {
            ssize_t n = write(fds[1], out.data() + off, out.size() - off);
            if (n <= 0)
                _exit(2);
            off += static_cast<size_t>(n);
        }
        _exit(0);
    }
    close(fds[1]);
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        got.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return "CHILD FAILED " + got;
    return got;
}

#endif
