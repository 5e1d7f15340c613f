/*
 * rf_replay: runs a fuzz target's corpus without libFuzzer, so the corpora
 * replay in every test run on any compiler. Link it with one target that
 * defines LLVMFuzzerTestOneInput and pass files or directories (not
 * recursed; entries run in name order). Each input runs in a forked child so
 * one crash or sanitizer report does not hide the rest; a line is printed per
 * failing input and the run ends with "N passed, M failed". Exits 1 if any
 * input failed, 77 (skipped) if there was nothing to run, 0 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A hang is a failure too; no corpus input should take this long. */
#define RF_REPLAY_TIMEOUT_S 60

static unsigned passed, failed;

/* Reads a whole file into an exactly-sized heap buffer (ASan sees overreads). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    size_t have = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            free(buf);
            close(fd);
            return e;
        }
        have += (size_t)n;
    }
    close(fd);
    *out = buf;
    *len = have;
    return 0;
}

static void run_one(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int status, rc;
    pid_t pid;

    rc = read_file(path, &data, &len);
    if (rc < 0) {
        printf("FAIL %s: cannot read: %s\n", path, strerror(-rc));
        failed++;
        return;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", path, strerror(errno));
        failed++;
        free(data);
        return;
    }
    if (pid == 0) {
        alarm(RF_REPLAY_TIMEOUT_S);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        _exit(0);
    }
    free(data);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            printf("FAIL %s: waitpid: %s\n", path, strerror(errno));
            failed++;
            return;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
        return;
    }
    if (WIFSIGNALED(status))
        printf("FAIL %s: %s%s\n", path, strsignal(WTERMSIG(status)),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else
        printf("FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
    failed++;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        printf("FAIL %s: opendir: %s\n", dir, strerror(errno));
        failed++;
        return;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

            if (!grown) {
                fprintf(stderr, "rf_replay: out of memory\n");
                exit(2);
            }
            names = grown;
        }
        if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
            fprintf(stderr, "rf_replay: out of memory\n");
            exit(2);
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;

        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            run_one(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
#ifdef RF_CORPUS_DIR
    /* Built for one target: with no arguments, replay its own corpus. */
    static char *own[] = {NULL, (char *)RF_CORPUS_DIR, NULL};
    if (argc < 2) {
        own[0] = argv[0];
        argv = own;
        argc = 2;
    }
#endif
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) < 0) {
            printf("FAIL %s: %s\n", argv[i], strerror(errno));
            failed++;
        } else if (S_ISDIR(st.st_mode)) {
            run_dir(argv[i]);
        } else {
            run_one(argv[i]);
        }
    }
    printf("%u passed, %u failed\n", passed, failed);
    if (failed)
        return 1;
    /* An empty corpus proves nothing: say skipped rather than passed. */
    return passed ? 0 : 77;
}
