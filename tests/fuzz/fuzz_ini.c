/*
 * libFuzzer target for core/rf_ini.c. The first input byte picks the flags
 * and where a callback stops the parse; the rest is the configuration text.
 * Besides what the sanitizers catch, it checks the callback contract: names
 * and values are NUL-terminated with the advertised length, lines only grow
 * and stay inside the text, a NULL value only comes with RF_INI_BARE, the
 * section pointer matches the last on_section, a callback's stop value is
 * returned as is, and every failure carries a message and a line. The
 * number helpers get the text as well. Corpus: tests/fuzz/corpus/ini/.
 */
#include "rf_fuzz.h"
#include "rf_ini.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz {
    unsigned flags;
    int lines; /* physical lines in the text */
    int last_line;
    int events;
    int stop_at; /* stop with -1234 at this event, or never (-1) */
    int stopped;
    int have_section;
    char section[64]; /* prefix of the last section name */
};

static int event(struct fz *f, int line)
{
    CHECK(line >= 1 && line <= f->lines);
    CHECK(line >= f->last_line);
    f->last_line = line;
    if (f->events++ == f->stop_at) {
        f->stopped = 1;
        return -1234;
    }
    return 0;
}

static int on_section(void *ctx, const char *name, int line)
{
    struct fz *f = ctx;
    CHECK(name != NULL);
    f->have_section = 1;
    strncpy(f->section, name, sizeof(f->section) - 1);
    f->section[sizeof(f->section) - 1] = '\0';
    return event(f, line);
}

static int on_entry(void *ctx, const rf_ini_entry_t *e)
{
    struct fz *f = ctx;
    CHECK(e->name != NULL && strlen(e->name) == e->name_len);
    if (e->value)
        CHECK(strlen(e->value) == e->value_len);
    else
        CHECK((f->flags & RF_INI_BARE) && e->value_len == 0 && e->key == NULL);
    if (e->key)
        CHECK(strlen(e->key) <= RF_INI_MAX_VALUE);
    CHECK(!e->section == !f->have_section);
    if (e->section)
        CHECK(!strncmp(e->section, f->section, sizeof(f->section) - 1));
    return event(f, e->line);
}

static const char *lookup(void *ctx, const char *name)
{
    (void)ctx;
    /* some variables are set (to their own name, so they expand to text
     * the scanner never saw), the rest are unset */
    return strlen(name) % 2 ? name : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct fz f = {
        .flags = data[0] & (RF_INI_WHOLE | RF_INI_BARE),
        .lines = 1,
        .stop_at = (data[0] >> 2) == 63 ? -1 : (data[0] >> 2),
    };
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    for (size_t i = 0; i < len; i++)
        f.lines += text[i] == '\n';

    char err[128];
    int line = -1;
    int r = rf_ini_parse_ex(text, len, f.flags, on_section, on_entry, lookup, &f, err, sizeof(err),
                            &line);
    CHECK(strlen(err) < sizeof(err));
    if (f.stopped) {
        CHECK(r == -1234 && err[0] == '\0' && line == f.last_line);
    } else if (r < 0) {
        CHECK(r == -EINVAL || r == -E2BIG || r == -ENOMEM);
        CHECK(err[0] != '\0');
        CHECK(line >= 1 && line <= f.lines);
        if (r == -EINVAL)
            CHECK(!strncmp(err, "syntax error, unexpected ", 25) ||
                  !strcmp(err, "value is NULL for a ZEND_INI_PARSER_ENTRY"));
    } else {
        CHECK(r == 0);
    }

    /* the value helpers, on the text as one C string */
    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, text, len);
    s[len] = '\0';
    int b = -1;
    long v = 0;
    r = rf_ini_bool(s, &b);
    CHECK((r == 0 && (b == 0 || b == 1)) || r == -EINVAL);
    r = rf_ini_int(s, &v);
    CHECK((r == 0 && v >= INT32_MIN && v <= INT32_MAX) || r == -EINVAL);
    r = rf_ini_time(s, &v);
    CHECK((r == 0 && v >= INT32_MIN && v <= INT32_MAX) || r == -EINVAL);
    free(s);
    return 0;
}
