/*
 * rf_proctitle: the process title `ps` shows, the way php-fpm sets it on
 * Linux (fpm_env.c): the strings argv[] and environ[] point to lie one
 * after another at the top of the stack, and /proc/<pid>/cmdline reads
 * them from there. Once both are copied to the heap that whole area can
 * hold a title, so the master shows as
 *   ringfpm: master process (/etc/php/8.2/fpm/php-fpm.conf)
 * and each executor as `ringfpm: pool www`. The thread name (what
 * /proc/<pid>/comm and `ps -o comm` show) is left alone, as php-fpm does, so
 * pidof, pgrep -x and ps -C still find the processes.
 *
 * Main thread only; no locking. Nothing here allocates after init.
 */
#ifndef RF_PROCTITLE_H
#define RF_PROCTITLE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Prefix of every title, like php-fpm's "php-fpm: ". */
#define RF_PROCTITLE_PREFIX "ringfpm: "

/*
 * Make the argv + environ area writable as a title. Call once, first thing
 * in main(), with main's own argc/argv: every argv[i] and the environment
 * (environ, getenv) are moved to heap copies, and argv[i] is repointed at
 * its copy, so the caller keeps using argv (getopt, re-exec on reload) as
 * before. A pointer into the original strings taken BEFORE this call (an
 * optarg, a getenv() result) would be overwritten by rf_proctitle_set:
 * take none. glibc's program_invocation_name is repointed too. A second
 * call, or argc < 1, does nothing. Out of memory leaves the area untouched
 * (titles then only rename the thread).
 */
void rf_proctitle_init(int argc, char **argv);

/*
 * Set the title to RF_PROCTITLE_PREFIX followed by the printf-formatted
 * text, e.g. rf_proctitle_set("pool %s", name). The title is cut to the
 * size of the area (at least the original command line's length), the
 * rest of the area is zeroed. Without rf_proctitle_init only the thread
 * name changes (prctl(PR_SET_NAME), first 15 bytes; applies to the calling
 * thread and to threads it creates afterwards).
 */
__attribute__((format(printf, 1, 2))) void rf_proctitle_set(const char *fmt, ...);

/* Bytes a title can use (not counting the final NUL); 0 before init. For
 * tests and for a log line when the title will be cut. */
unsigned long rf_proctitle_room(void);

#ifdef __cplusplus
}
#endif

#endif
