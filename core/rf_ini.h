/*
 * rf_ini: the lexical layer of php-fpm's configuration dialect. php-fpm reads
 * its files line by line and hands every physical line (plus a '\n') to
 * zend_parse_ini_string(ZEND_INI_SCANNER_NORMAL); this module reproduces what
 * that does, byte for byte where users can see it: sections, `key = value`,
 * `key[sub] = value` arrays, `;` comments, quoting, `${VAR}` expansion, INI
 * constants and the bitwise operators, the BOOL/NULL keywords, and PHP 8.2's
 * error texts ("syntax error, unexpected '!'"). It is a pure parser: bytes
 * in, callbacks out, no I/O, no globbing and no knowledge of directives --
 * the caller reads the files, follows `include`, substitutes `$pool` and
 * decides what each name means. Any thread may call it; one call owns its
 * own state.
 */
#ifndef RF_INI_H
#define RF_INI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One `name = value` or `name[key] = value` statement. Every pointer is
 * NUL-terminated and points into the parser's scratch space: it is valid
 * only during the callback that receives it -- copy what you keep. Strings
 * never contain NUL bytes (the Zend scanner stops at the first one).
 */
typedef struct rf_ini_entry {
    const char *section; /* name of the last `[section]`, NULL before any */
    const char *name;    /* directive name, blanks trimmed, never NULL */
    size_t name_len;
    const char *key;   /* array key: NULL if not an array, "" for name[] */
    const char *value; /* evaluated value; NULL only for a bare name */
    size_t value_len;  /* (see RF_INI_BARE) */
    int line;          /* 1-based physical line of the statement */
} rf_ini_entry_t;

/*
 * Looks up ${name}. Zend consults php.ini's configuration directives first
 * and the environment second; a callback that wants that order implements
 * it. Return NULL for "unset" (expands to ""). The returned string must
 * stay valid until the callback is called again or the parse returns.
 */
typedef const char *(*rf_ini_getenv_fn)(void *ctx, const char *name);

/* Receives one statement. Return < 0 to stop the parse with that value. */
typedef int (*rf_ini_entry_fn)(void *ctx, const rf_ini_entry_t *e);

/* Receives `[section]` (name valid during the call). Return < 0 to stop. */
typedef int (*rf_ini_section_fn)(void *ctx, const char *section, int line);

/* Flags for rf_ini_parse_ex(). */
enum rf_ini_flags {
    /* Scan the text as ONE INI string, the way php-fpm treats the PHP_VALUE
     * and PHP_ADMIN_VALUE FastCGI params, instead of one Zend parse per
     * physical line (the config-file loader). Differences: a double- or
     * single-quoted string may then span lines, and only the first line
     * may start with a UTF-8 BOM. */
    RF_INI_WHOLE = 1u << 0,
    /* Pass a bare name (a line holding just `foo` or `#foo`) to on_entry
     * with value == NULL instead of failing. Zend reports such a line as
     * an entry without a value; php-fpm's config loader makes that fatal,
     * its PHP_VALUE handler only logs it. */
    RF_INI_BARE = 1u << 1,
};

/* Limits: a single value, name or key longer than this fails with -E2BIG
 * ("value too long"); nothing in php-fpm needs more. */
#define RF_INI_MAX_VALUE (16u << 20)

/*
 * Parses `len` bytes of `text` as a php-fpm configuration file: every line
 * (split at '\n'; "\r\n" is handled by the scanner) is parsed on its own,
 * empty lines are skipped, and a NUL byte ends its line early -- exactly
 * what fpm_conf_load_ini_file() + zend_parse_ini_string() do. A lone '\r'
 * ends a statement inside a line, so one line may yield several events
 * with the same line number. `include`, `$pool` and `$prefix` are NOT
 * special here: they arrive as ordinary entries/values. Callbacks run in
 * file order; either may be NULL. getenv_fn may be NULL (every ${VAR} is
 * then empty).
 *
 * Values are evaluated as PHP does: `E_ALL & ~E_NOTICE` -> "32759" (32-bit
 * ints, atoi() operands, one left-associative level for | & ^). Constants
 * known here: E_ERROR .. E_USER_DEPRECATED and E_ALL (32767), TRUE/FALSE/
 * NULL, DIRECTORY_SEPARATOR, PATH_SEPARATOR, PHP_EOL, PHP_OS,
 * PHP_OS_FAMILY, PHP_INT_MAX/MIN/SIZE, PHP_MAXPATHLEN, PHP_DEBUG, PHP_ZTS.
 * php-fpm would also replace any other constant of the PHP build
 * (PHP_VERSION, LOG_DEBUG, ...); here such a word stays literal.
 *
 * Returns 0 when the whole text was parsed; the negative value a callback
 * returned (err is then "" and *err_line that event's line); -EINVAL for a
 * syntax error; -E2BIG when a string exceeds RF_INI_MAX_VALUE ("value too
 * long") or an expression nests deeper than bison's 10000-entry stack
 * ("memory exhausted", e.g. 9995 '~' in a row -- PHP fails there too);
 * -ENOMEM. On failure `err` (if not NULL, `errlen` bytes, always
 * NUL-terminated) holds the message without any location -- the caller
 * prefixes "[file:line] " -- and `*err_line` (if not NULL) the 1-based
 * physical line. Messages are PHP 8.2's, e.g.:
 *   "syntax error, unexpected '!'"
 *   "syntax error, unexpected end of file, expecting ']'"
 *   "value is NULL for a ZEND_INI_PARSER_ENTRY"   (bare name, e.g. `#x`)
 * (php-fpm itself prints a syntax error as "PHP:  <msg> in Unknown on line
 * 1", without file or line.) Statements before the error, even on the same
 * line, have already been delivered, as in php-fpm.
 */
int rf_ini_parse(const char *text, size_t len, rf_ini_section_fn on_section,
                 rf_ini_entry_fn on_entry, rf_ini_getenv_fn getenv_fn, void *ctx, char *err,
                 size_t errlen, int *err_line);

/* rf_ini_parse() with `flags` from enum rf_ini_flags. */
int rf_ini_parse_ex(const char *text, size_t len, unsigned flags, rf_ini_section_fn on_section,
                    rf_ini_entry_fn on_entry, rf_ini_getenv_fn getenv_fn, void *ctx, char *err,
                    size_t errlen, int *err_line);

/*
 * php-fpm 8.2's boolean directive parser (fpm_conf_set_boolean), which
 * compares case-sensitively: "1", "yes", "true", "on" -> 1; "", "0", "no",
 * "none", "false", "off" -> 0. (Unquoted, the scanner has already turned
 * yes/on/true in any case into "1" and no/off/false/none/null into "";
 * a quoted "Yes" is rejected by php-fpm too.) Returns 0 and sets *out, or
 * -EINVAL ("invalid boolean value").
 */
int rf_ini_bool(const char *v, int *out);

/*
 * php-fpm's integer parser (fpm_conf_set_integer): every character must be
 * an ASCII digit except an optional leading '-', else -EINVAL ("is not a
 * valid number (greater or equal than zero)"). The value is then what
 * php-fpm stores, atoi() into an int: "" and "-" give 0, and a number that
 * does not fit 32 bits wraps ("4294967297" -> 1) -- kept for drop-in
 * compatibility; range checks belong to the directive. Returns 0.
 */
int rf_ini_int(const char *v, long *out);

/*
 * php-fpm's time parser (fpm_conf_set_time): "" -> -EINVAL ("invalid time
 * value"); a last character of s (or a digit) means seconds, m minutes,
 * h hours, d days, anything else -> -EINVAL ("unknown suffix used in time
 * value"). The rest goes through atoi() and a 32-bit multiply exactly as in
 * php-fpm, so "5m" -> 300, "1.5m" -> 60, "m" -> 0, "abc5" -> 0, "-5s" ->
 * -5. Returns 0 and sets *seconds.
 */
int rf_ini_time(const char *v, long *seconds);

#ifdef __cplusplus
}
#endif

#endif
