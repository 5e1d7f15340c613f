/*
 * rf_ini: php-fpm's configuration dialect, reproduced from what PHP 8.2's
 * INI scanner (Zend/zend_ini_scanner.l, an re2c longest-match lexer with
 * start conditions) and its bison grammar (Zend/zend_ini_parser.y) do to one
 * line of text. The scanner below is written per start condition: every
 * rule of that condition is tried at the cursor, the longest match wins and
 * ties go to the rule listed first in the .l file -- which is how re2c picks.
 * One re2c detail is observable and kept: the generated DFA may read the NUL
 * that ends the buffer, but asking for the byte after it makes the scanner
 * return token 0, "end of file" (an unterminated 'raw string' does this).
 * The parser is recursive descent, but it detects errors in the same LR
 * states bison does, so messages carry the same "unexpected X, expecting Y"
 * text. Behaviour was checked against php 8.2's parse_ini_string() and
 * php-fpm8.2 -t; see tests/unit/core/rf_ini_test.cc.
 */
#include "rf_ini.h"
#include "rf_mem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Token kinds, in bison's symbol order (their names appear in messages). */
enum ini_tok {
    T_END = 0,
    T_SECTION,
    T_RAW,
    T_CONSTANT,
    T_NUMBER,
    T_STRING,
    T_WHITESPACE,
    T_LABEL,
    T_OFFSET,
    T_DOLLAR_CURLY,
    T_VARNAME,
    T_QUOTED_STRING,
    T_BOOL_TRUE,
    T_BOOL_FALSE,
    T_NULL_NULL,
    T_END_OF_LINE,
    T_CHAR, /* a single-character token, in tok.ch */
};

static const char *const tok_names[] = {
    "end of file",   "TC_SECTION", "TC_RAW",    "TC_CONSTANT",     "TC_NUMBER",  "TC_STRING",
    "TC_WHITESPACE", "TC_LABEL",   "TC_OFFSET", "TC_DOLLAR_CURLY", "TC_VARNAME", "TC_QUOTED_STRING",
    "BOOL_TRUE",     "BOOL_FALSE", "NULL_NULL", "END_OF_LINE",
};

/* Scanner start conditions. */
enum ini_cond { C_INITIAL, C_VALUE, C_SECTION, C_OFFSET, C_DQUOTE, C_VARNAME };

typedef struct ini_tok_s {
    int type;
    unsigned char ch; /* T_CHAR */
    size_t pos;       /* token start in the buffer */
    size_t off, len;  /* semantic text (trimmed / unquoted) */
} ini_tok_t;

typedef struct ini_str {
    char *p;
    size_t len, cap;
} ini_str_t;

typedef struct ini_parser {
    /* scanner */
    const unsigned char *b; /* buffer; b[lim] == '\0' */
    size_t lim, cur;
    int cond;
    int stack[4];
    int depth;
    /* parser */
    ini_tok_t la;
    bool have_la;
    unsigned flags;
    int line;         /* physical line of the buffer (line mode) */
    int stmt_line;    /* line of the statement being parsed */
    const char *text; /* whole-text mode: for line numbers */
    size_t nl_pos;
    int nl_line;
    /* scratch */
    ini_str_t name, key, val, var, sect;
    struct ini_frame *frames; /* parse_expr()'s stack */
    size_t nframes;
    bool have_sect;
    /* caller */
    rf_ini_section_fn on_section;
    rf_ini_entry_fn on_entry;
    rf_ini_getenv_fn getenv_fn;
    void *ctx;
    char *err;
    size_t errlen;
    int err_line;
} ini_parser_t;

/* A rule that would make the DFA read past the terminating NUL. */
#define M_END ((ptrdiff_t)-1)

/* ---------------------------------------------------------------- strings */

static int str_reserve(ini_parser_t *p, ini_str_t *s, size_t extra)
{
    size_t need = s->len + extra + 1;
    if (s->len + extra > RF_INI_MAX_VALUE) {
        snprintf(p->err, p->errlen, "value too long");
        return -E2BIG;
    }
    if (need <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap *= 2;
    char *n = rf_realloc(s->p, cap);
    if (!n) {
        snprintf(p->err, p->errlen, "out of memory");
        return -ENOMEM;
    }
    s->p = n;
    s->cap = cap;
    return 0;
}

static int str_add(ini_parser_t *p, ini_str_t *s, const void *d, size_t n)
{
    int r = str_reserve(p, s, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
    return 0;
}

static int str_set(ini_parser_t *p, ini_str_t *s, const void *d, size_t n)
{
    s->len = 0;
    return str_add(p, s, d, n);
}

/* ------------------------------------------------------------ char tests */

static inline unsigned ch(const ini_parser_t *p, size_t i)
{
    return i < p->lim ? p->b[i] : 0;
}

static inline bool is_blank(unsigned c)
{
    return c == ' ' || c == '\t';
}

/* LABEL_CHAR of PHP 8.2, [^=\n\r\t;&|^$~(){}!"\[]: ']' is allowed (8.3
 * excludes it) and so is NUL, so a label that runs into the end of the
 * buffer makes the DFA ask for more: "end of file". Callers check that. */
static inline bool is_label(unsigned c)
{
    return c && !strchr("=\n\r\t;&|^$~(){}!\"[", (int)c);
}

/* VALUE_CHARS without its LITERAL_DOLLAR alternative. */
static inline bool is_value(unsigned c)
{
    return c && !strchr("$= \t\n\r;&|^~()!\"'", (int)c);
}

/* SECTION_VALUE_CHARS without its escape/dollar alternatives; NUL counts. */
static inline bool is_svc(unsigned c)
{
    return !c || !strchr("$\n\r;\"']\\", (int)c);
}

static inline bool is_alpha_(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static inline unsigned lower(unsigned c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* --------------------------------------------------------- rule matchers */

static size_t m_blanks(const ini_parser_t *p, size_t i)
{
    size_t k = 0;
    while (is_blank(ch(p, i + k)))
        k++;
    return k;
}

/* NEWLINE ("\r"|"\n"|"\r\n") */
static size_t m_newline(const ini_parser_t *p, size_t i)
{
    if (ch(p, i) == '\r')
        return ch(p, i + 1) == '\n' ? 2 : 1;
    return ch(p, i) == '\n' ? 1 : 0;
}

/* {TABS_AND_SPACES}*{NEWLINE} */
static ptrdiff_t m_eol(const ini_parser_t *p, size_t i)
{
    size_t k = m_blanks(p, i), n = m_newline(p, i + k);
    return n ? (ptrdiff_t)(k + n) : 0;
}

/* {TABS_AND_SPACES}*[;][^\r\n]*{NEWLINE}: without a line end, the DFA eats
 * the terminating NUL and asks for more. */
static ptrdiff_t m_comment(const ini_parser_t *p, size_t i)
{
    size_t k = m_blanks(p, i);
    if (ch(p, i + k) != ';')
        return 0;
    size_t j = i + k + 1;
    while (j < p->lim && p->b[j] != '\r' && p->b[j] != '\n')
        j++;
    if (j >= p->lim)
        return M_END;
    return (ptrdiff_t)(j - i + m_newline(p, j));
}

/* "'"{SINGLE_QUOTED_CHARS}+"'": [^'] also matches the terminating NUL. */
static ptrdiff_t m_raw(const ini_parser_t *p, size_t i)
{
    if (ch(p, i) != '\'' || ch(p, i + 1) == '\'')
        return 0;
    size_t j = i + 1;
    while (j < p->lim && p->b[j] != '\'')
        j++;
    if (j >= p->lim)
        return M_END;
    return (ptrdiff_t)(j + 1 - i);
}

/* [{TABS_AND_SPACES}*]["] */
static ptrdiff_t m_dq_start(const ini_parser_t *p, size_t i)
{
    size_t k = m_blanks(p, i);
    return ch(p, i + k) == '"' ? (ptrdiff_t)(k + 1) : 0;
}

static ptrdiff_t m_dollar_curly(const ini_parser_t *p, size_t i)
{
    return ch(p, i) == '$' && ch(p, i + 1) == '{' ? 2 : 0;
}

/* CONSTANT [a-zA-Z_][a-zA-Z0-9_]* */
static size_t m_constant(const ini_parser_t *p, size_t i)
{
    if (!is_alpha_(ch(p, i)))
        return 0;
    size_t k = 1;
    while (is_alpha_(ch(p, i + k)) || is_digit(ch(p, i + k)))
        k++;
    return k;
}

/* PHP 8.2's NUMBER: [-]?{LNUM}|{DNUM}, DNUM ([0-9]*[.][0-9]+)|([0-9]+[.][0-9]*) */
static size_t m_number(const ini_parser_t *p, size_t i)
{
    size_t best = 0, k = 0, d;
    if (ch(p, i) == '-')
        k = 1;
    for (d = 0; is_digit(ch(p, i + k + d));)
        d++;
    if (d)
        best = k + d;
    for (d = 0; is_digit(ch(p, i + d));)
        d++;
    if (ch(p, i + d) == '.') {
        size_t f = 0;
        while (is_digit(ch(p, i + d + 1 + f)))
            f++;
        if (d || f)
            best = best > d + 1 + f ? best : d + 1 + f;
    }
    return best;
}

/* (true|on|yes|false|off|no|none|null){TABS_AND_SPACES}*, case-insensitive
 * (re2c runs with --case-inverted). Sets *type to the winning rule. */
static size_t m_bool(const ini_parser_t *p, size_t i, int *type)
{
    static const struct {
        const char *w;
        int type;
    } words[] = {
        {"true", T_BOOL_TRUE},   {"on", T_BOOL_TRUE},   {"yes", T_BOOL_TRUE},
        {"false", T_BOOL_FALSE}, {"off", T_BOOL_FALSE}, {"no", T_BOOL_FALSE},
        {"none", T_BOOL_FALSE},  {"null", T_NULL_NULL},
    };
    size_t best = 0;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t n = strlen(words[w].w), k;
        for (k = 0; k < n && lower(ch(p, i + k)) == (unsigned char)words[w].w[k]; k++)
            ;
        if (k != n)
            continue;
        n += m_blanks(p, i + n);
        /* longest wins; on a tie the earlier rule (TRUE < FALSE < NULL) */
        if (n > best || (n == best && words[w].type < *type)) {
            best = n;
            *type = words[w].type;
        }
    }
    return best;
}

/*
 * Longest match of a repetition of "units" where a unit is a plain class
 * character (1 byte), "$" + [^{\0] (2), or "$\" + any byte (3) -- and, with
 * `svc`, "\" + any byte (2). This is VALUE_CHARS+ (svc false) and
 * SECTION_VALUE_CHARS+ (svc true). Alternatives overlap ("$\x" is one unit
 * or two), so the reachable end positions are tracked as a set, like the
 * DFA does. Consuming the terminating NUL means the DFA asks for more.
 */
static ptrdiff_t m_units(const ini_parser_t *p, size_t i, bool svc)
{
    unsigned reach = 1; /* bit k: position pos + k is a unit boundary */
    size_t pos = i, best = 0;
    while (reach) {
        if (reach & 1) {
            if (pos > i)
                best = pos - i;
            unsigned c = ch(p, pos);
            if (svc ? is_svc(c) : is_value(c)) {
                if (pos >= p->lim)
                    return M_END; /* a plain SVC char: the NUL itself */
                reach |= 2;
            } else if (c == '\\' && svc) {
                if (pos + 1 >= p->lim)
                    return M_END;
                reach |= 4;
            } else if (c == '$') {
                unsigned c1 = ch(p, pos + 1);
                if (pos + 1 < p->lim && c1 != '{')
                    reach |= 4;
                if (c1 == '\\') {
                    if (pos + 2 >= p->lim)
                        return M_END;
                    reach |= 8;
                }
            }
        }
        reach >>= 1;
        pos++;
    }
    return (ptrdiff_t)best;
}

/* Picks the longest candidate, ties to the lowest index; -1 if none. */
static int pick(const ptrdiff_t *len, int n, bool *end)
{
    int best = -1;
    *end = false;
    for (int r = 0; r < n; r++) {
        if (len[r] == M_END)
            *end = true;
        else if (len[r] > 0 && (best < 0 || len[r] > len[best]))
            best = r;
    }
    return best;
}

/* ---------------------------------------------------------------- scanner */

static void push_cond(ini_parser_t *p, int c)
{
    if (p->depth < (int)(sizeof(p->stack) / sizeof(p->stack[0])))
        p->stack[p->depth++] = p->cond;
    p->cond = c;
}

static void pop_cond(ini_parser_t *p)
{
    p->cond = p->depth > 0 ? p->stack[--p->depth] : C_INITIAL;
}

static void tok_set(ini_tok_t *t, int type, size_t pos, size_t off, size_t len)
{
    t->type = type;
    t->ch = 0;
    t->pos = pos;
    t->off = off;
    t->len = len;
}

static void tok_char(ini_tok_t *t, size_t pos, unsigned c)
{
    tok_set(t, T_CHAR, pos, pos, 1);
    t->ch = (unsigned char)c;
}

/* EAT_LEADING_WHITESPACE + EAT_TRAILING_WHITESPACE_EX(x) on [*off, +*len);
 * x == 0 strips blanks and line ends only. */
static void trim(const ini_parser_t *p, size_t *off, size_t *len, unsigned x)
{
    while (*len && is_blank(p->b[*off])) {
        (*off)++;
        (*len)--;
    }
    while (*len) {
        unsigned c = p->b[*off + *len - 1];
        if ((!x || c != x) && c != '\n' && c != '\r' && c != ' ' && c != '\t')
            break;
        (*len)--;
    }
}

static void scan_initial(ini_parser_t *p, ini_tok_t *t)
{
    size_t i;
restart:
    i = p->cur;
    if (i >= p->lim) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    /* a UTF-8 BOM at the very start of the scanned string is skipped */
    if (i == 0 && p->lim > 3 && !memcmp(p->b, "\xef\xbb\xbf", 3)) {
        p->cur = 3;
        goto restart;
    }
    size_t lab = 0;
    while (is_label(ch(p, i + lab)))
        lab++;
    if (lab && i + lab >= p->lim) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    /* the INITIAL rules, in the order of zend_ini_scanner.l */
    enum {
        I_SECTION,
        I_OFFSET,
        I_BOOL,
        I_LABEL,
        I_ASSIGN,
        I_TOKEN,
        I_BLANKS,
        I_EOL,
        I_COMMENT,
        I_ANY
    };
    int btype = T_END;
    size_t eq = m_blanks(p, i);
    unsigned c = ch(p, i);
    ptrdiff_t len[] = {
        [I_SECTION] = c == '[',
        [I_OFFSET] =
            lab && ch(p, i + lab) == '[' ? (ptrdiff_t)(lab + 1 + m_blanks(p, i + lab + 1)) : 0,
        [I_BOOL] = (ptrdiff_t)m_bool(p, i, &btype),
        [I_LABEL] = (ptrdiff_t)lab,
        [I_ASSIGN] = ch(p, i + eq) == '=' ? (ptrdiff_t)(eq + 1 + m_blanks(p, i + eq + 1)) : 0,
        [I_TOKEN] = c && strchr(":,.[]\"'()&|^+-/*=%$!~<>?@{}", (int)c) ? 1 : 0,
        [I_BLANKS] = (ptrdiff_t)eq,
        [I_EOL] = m_eol(p, i),
        [I_COMMENT] = m_comment(p, i),
        [I_ANY] = 1,
    };
    bool end;
    int r = pick(len, I_ANY + 1, &end);
    if (end) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    size_t n = (size_t)len[r], off = i, tl = n;
    p->cur = i + n;
    switch (r) {
    case I_SECTION:
        p->cond = C_SECTION;
        tok_set(t, T_SECTION, i, i, 1);
        return;
    case I_OFFSET:
        trim(p, &off, &tl, '[');
        p->cond = C_OFFSET;
        tok_set(t, T_OFFSET, i, off, tl);
        return;
    case I_BOOL: /* a parse error wherever it comes */
        tok_set(t, btype, i, i, 0);
        return;
    case I_LABEL:
        trim(p, &off, &tl, 0);
        tok_set(t, T_LABEL, i, off, tl);
        return;
    case I_ASSIGN:
        p->cond = C_VALUE;
        tok_char(t, i, '=');
        return;
    case I_TOKEN:
        tok_char(t, i, c);
        return;
    case I_BLANKS:
        goto restart;
    case I_EOL:
    case I_COMMENT:
        tok_set(t, T_END_OF_LINE, i, i, 0);
        return;
    default:
        tok_set(t, T_END, i, i, 0);
        return;
    }
}

static void scan_value(ini_parser_t *p, ini_tok_t *t)
{
    size_t i = p->cur;
    if (i >= p->lim) {
        p->cond = C_INITIAL;
        tok_set(t, T_END_OF_LINE, i, i, 0);
        return;
    }
    /* the ST_VALUE rules, in the order of zend_ini_scanner.l */
    enum {
        V_RAW,
        V_DOLLAR_CURLY,
        V_BOOL,
        V_EOL,
        V_CONSTANT,
        V_NUMBER,
        V_OPERATOR,
        V_ASSIGN,
        V_STRING,
        V_DQUOTE,
        V_BLANKS,
        V_COMMENT,
        V_ANY
    };
    unsigned c = ch(p, i);
    int btype = T_END;
    ptrdiff_t len[] = {
        [V_RAW] = m_raw(p, i),
        [V_DOLLAR_CURLY] = m_dollar_curly(p, i),
        [V_BOOL] = (ptrdiff_t)m_bool(p, i, &btype),
        [V_EOL] = m_eol(p, i),
        [V_CONSTANT] = (ptrdiff_t)m_constant(p, i),
        [V_NUMBER] = (ptrdiff_t)m_number(p, i),
        [V_OPERATOR] = c && strchr("&|^~()!", (int)c) ? (ptrdiff_t)(1 + m_blanks(p, i + 1)) : 0,
        [V_ASSIGN] = c == '=',
        [V_STRING] = m_units(p, i, false),
        [V_DQUOTE] = m_dq_start(p, i),
        [V_BLANKS] = (ptrdiff_t)m_blanks(p, i),
        [V_COMMENT] = m_comment(p, i),
        [V_ANY] = 1,
    };
    bool end;
    int r = pick(len, V_ANY + 1, &end);
    if (end) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    size_t n = (size_t)len[r];
    p->cur = i + n;
    switch (r) {
    case V_RAW:
        tok_set(t, T_RAW, i, i + 1, n - 2);
        return;
    case V_DOLLAR_CURLY:
        push_cond(p, C_VARNAME);
        tok_set(t, T_DOLLAR_CURLY, i, i, 2);
        return;
    case V_BOOL:
        tok_set(t, btype, i, i, 0);
        return;
    case V_CONSTANT:
        tok_set(t, T_CONSTANT, i, i, n);
        return;
    case V_NUMBER:
        tok_set(t, T_NUMBER, i, i, n);
        return;
    case V_OPERATOR:
        tok_char(t, i, c);
        return;
    case V_ASSIGN: /* ends the value without being consumed: yyless(0) */
        p->cur = i;
        p->cond = C_INITIAL;
        tok_set(t, T_END_OF_LINE, i, i, 0);
        return;
    case V_STRING:
        tok_set(t, T_STRING, i, i, n);
        return;
    case V_DQUOTE:
        push_cond(p, C_DQUOTE);
        tok_char(t, i, '"');
        return;
    case V_BLANKS:
        tok_set(t, T_WHITESPACE, i, i, n);
        return;
    default: /* V_EOL, V_COMMENT, V_ANY (a lone quote or dollar) */
        p->cond = C_INITIAL;
        tok_set(t, T_END_OF_LINE, i, i, 0);
        return;
    }
}

/* ST_SECTION_VALUE and ST_OFFSET: they differ only in the closing ']'. */
static void scan_bracket(ini_parser_t *p, ini_tok_t *t)
{
    size_t i = p->cur;
    if (i >= p->lim) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    ptrdiff_t close;
    if (p->cond == C_SECTION) { /* "]"{TABS_AND_SPACES}*{NEWLINE}? */
        close = ch(p, i) == ']' ? (ptrdiff_t)(1 + m_blanks(p, i + 1)) : 0;
        if (close)
            close += (ptrdiff_t)m_newline(p, i + (size_t)close);
    } else { /* {TABS_AND_SPACES}*"]" */
        size_t k = m_blanks(p, i);
        close = ch(p, i + k) == ']' ? (ptrdiff_t)(k + 1) : 0;
    }
    /* the rules of both conditions, in the order of zend_ini_scanner.l */
    enum {
        B_RAW,
        B_CLOSE,
        B_DOLLAR_CURLY,
        B_CONSTANT,
        B_NUMBER,
        B_STRING,
        B_DQUOTE,
        B_BLANKS,
        B_ANY
    };
    ptrdiff_t len[] = {
        [B_RAW] = m_raw(p, i),
        [B_CLOSE] = close,
        [B_DOLLAR_CURLY] = m_dollar_curly(p, i),
        [B_CONSTANT] = (ptrdiff_t)m_constant(p, i),
        [B_NUMBER] = (ptrdiff_t)m_number(p, i),
        [B_STRING] = m_units(p, i, true),
        [B_DQUOTE] = m_dq_start(p, i),
        [B_BLANKS] = (ptrdiff_t)m_blanks(p, i), /* never wins: B_STRING takes blanks */
        [B_ANY] = 1,
    };
    bool end;
    int r = pick(len, B_ANY + 1, &end);
    if (end || r == B_ANY) { /* <*>[^] returns token 0 */
        tok_set(t, T_END, i, i, 0);
        return;
    }
    size_t n = (size_t)len[r];
    p->cur = i + n;
    switch (r) {
    case B_RAW:
        tok_set(t, T_RAW, i, i + 1, n - 2);
        return;
    case B_CLOSE:
        p->cond = C_INITIAL;
        tok_char(t, i, ']');
        return;
    case B_DOLLAR_CURLY:
        push_cond(p, C_VARNAME);
        tok_set(t, T_DOLLAR_CURLY, i, i, 2);
        return;
    case B_CONSTANT:
        tok_set(t, T_CONSTANT, i, i, n);
        return;
    case B_NUMBER:
        tok_set(t, T_NUMBER, i, i, n);
        return;
    case B_STRING:
        tok_set(t, T_STRING, i, i, n);
        return;
    case B_DQUOTE:
        push_cond(p, C_DQUOTE);
        tok_char(t, i, '"');
        return;
    default:
        tok_set(t, T_WHITESPACE, i, i, n);
        return;
    }
}

static void scan_dquote(ini_parser_t *p, ini_tok_t *t)
{
    size_t i = p->cur;
    if (i >= p->lim) {
        tok_set(t, T_END, i, i, 0);
        return;
    }
    if (m_dollar_curly(p, i)) {
        p->cur = i + 2;
        push_cond(p, C_VARNAME);
        tok_set(t, T_DOLLAR_CURLY, i, i, 2);
        return;
    }
    if (p->b[i] == '"') {
        p->cur = i + 1 + m_blanks(p, i + 1);
        pop_cond(p);
        tok_char(t, i, '"');
        return;
    }
    /* the contents run to '"' or "${"; a backslash escapes the next byte,
     * except that \" right before the line end closes ("C:\path\") */
    size_t s = i;
    while (s < p->lim) {
        unsigned c = p->b[s++];
        if (c == '"' || (c == '$' && s < p->lim && p->b[s] == '{')) {
            s--;
            break;
        }
        if (c == '\\' && s < p->lim) {
            unsigned e = p->b[s++];
            if (e == '"' && (s >= p->lim || p->b[s] == '\n' || p->b[s] == '\r')) {
                s--;
                break;
            }
        }
    }
    p->cur = s;
    tok_set(t, T_QUOTED_STRING, i, i, s - i);
}

static void scan_varname(ini_parser_t *p, ini_tok_t *t)
{
    size_t i = p->cur, n = 0;
    while (is_label(ch(p, i + n)))
        n++;
    if (n && i + n >= p->lim) {
        tok_set(t, T_END, i, i, 0);
    } else if (n) {
        size_t off = i, tl = n;
        p->cur = i + n;
        trim(p, &off, &tl, 0);
        tok_set(t, T_VARNAME, i, off, tl);
    } else if (i < p->lim && p->b[i] == '}') {
        p->cur = i + 1;
        pop_cond(p);
        tok_char(t, i, '}');
    } else {
        tok_set(t, T_END, i, i, 0);
    }
}

static void scan(ini_parser_t *p, ini_tok_t *t)
{
    switch (p->cond) {
    case C_INITIAL:
        scan_initial(p, t);
        break;
    case C_VALUE:
        scan_value(p, t);
        break;
    case C_SECTION:
    case C_OFFSET:
        scan_bracket(p, t);
        break;
    case C_DQUOTE:
        scan_dquote(p, t);
        break;
    default:
        scan_varname(p, t);
        break;
    }
}

/* ----------------------------------------------------------------- parser */

static ini_tok_t *peek(ini_parser_t *p)
{
    if (!p->have_la) {
        scan(p, &p->la);
        p->have_la = true;
    }
    return &p->la;
}

static void drop(ini_parser_t *p)
{
    p->have_la = false;
}

static bool is_char(const ini_tok_t *t, unsigned c)
{
    return t->type == T_CHAR && t->ch == c;
}

static int line_at(ini_parser_t *p, size_t pos)
{
    if (!p->text)
        return p->line;
    while (p->nl_pos < pos) /* the buffer is the text itself here */
        if (p->text[p->nl_pos++] == '\n')
            p->nl_line++;
    return p->nl_line;
}

static int syntax_error(ini_parser_t *p, const ini_tok_t *t, const char *expecting)
{
    char cbuf[8];
    const char *name;
    if (t->type == T_CHAR) {
        if (t->ch == '\'')
            snprintf(cbuf, sizeof(cbuf), "'\\''");
        else
            snprintf(cbuf, sizeof(cbuf), "'%c'", t->ch);
        name = cbuf;
    } else {
        name = tok_names[t->type];
    }
    snprintf(p->err, p->errlen, "syntax error, unexpected %s%s%s", name,
             expecting ? ", expecting " : "", expecting ? expecting : "");
    p->err_line = line_at(p, t->pos);
    return -EINVAL;
}

/* FIRST(var_string_list) */
static bool starts_vsl(const ini_tok_t *t)
{
    return (t->type >= T_RAW && t->type <= T_WHITESPACE) || t->type == T_DOLLAR_CURLY ||
           is_char(t, '"');
}

static const struct {
    const char *name, *value;
} ini_constants[] = {
    {"E_ERROR", "1"},
    {"E_WARNING", "2"},
    {"E_PARSE", "4"},
    {"E_NOTICE", "8"},
    {"E_CORE_ERROR", "16"},
    {"E_CORE_WARNING", "32"},
    {"E_COMPILE_ERROR", "64"},
    {"E_COMPILE_WARNING", "128"},
    {"E_USER_ERROR", "256"},
    {"E_USER_WARNING", "512"},
    {"E_USER_NOTICE", "1024"},
    {"E_STRICT", "2048"},
    {"E_RECOVERABLE_ERROR", "4096"},
    {"E_DEPRECATED", "8192"},
    {"E_USER_DEPRECATED", "16384"},
    {"E_ALL", "32767"},
    {"DIRECTORY_SEPARATOR", "/"},
    {"PATH_SEPARATOR", ":"},
    {"PHP_EOL", "\n"},
    {"PHP_OS", "Linux"},
    {"PHP_OS_FAMILY", "Linux"},
    {"PHP_INT_MAX", "9223372036854775807"},
    {"PHP_INT_MIN", "-9223372036854775808"},
    {"PHP_INT_SIZE", "8"},
    {"PHP_MAXPATHLEN", "4096"},
    {"PHP_DEBUG", "0"},
    {"PHP_ZTS", "0"},
};

/* zend_get_constant(): case-sensitive, except true/false/null. */
static const char *constant(const unsigned char *s, size_t n)
{
    static const char *const special[][2] = {{"true", "1"}, {"false", ""}, {"null", ""}};
    for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
        size_t m = strlen(special[k][0]), j;
        for (j = 0; j < n && j < m && lower(s[j]) == (unsigned char)special[k][0][j]; j++)
            ;
        if (j == n && n == m)
            return special[k][1];
    }
    for (size_t k = 0; k < sizeof(ini_constants) / sizeof(ini_constants[0]); k++)
        if (strlen(ini_constants[k].name) == n && !memcmp(ini_constants[k].name, s, n))
            return ini_constants[k].value;
    return NULL;
}

/*
 * bison's parser stack holds at most YYMAXDEPTH - 1 = 9999 states; one more
 * push fails the parse with "memory exhausted". Only nested expressions get
 * near it, but the parser counts every push so that the limit falls exactly
 * where PHP's does: `depth` is the number of states below the next push.
 */
#define INI_MAX_DEPTH 9999

static int need(ini_parser_t *p, size_t depth, const ini_tok_t *t)
{
    if (depth <= INI_MAX_DEPTH)
        return 0;
    snprintf(p->err, p->errlen, "memory exhausted");
    p->err_line = line_at(p, t->pos);
    return -E2BIG;
}

/* cfg_var_ref: TC_DOLLAR_CURLY TC_VARNAME '}' (the '${' is the lookahead,
 * to be pushed at depth + 1) */
static int parse_var(ini_parser_t *p, ini_str_t *out, size_t depth)
{
    ini_tok_t *t = peek(p);
    int r = need(p, depth + 1, t);
    if (r < 0)
        return r;
    drop(p);
    t = peek(p);
    if (t->type != T_VARNAME)
        return syntax_error(p, t, "TC_VARNAME");
    if ((r = need(p, depth + 2, t)) < 0 || (r = str_set(p, &p->var, p->b + t->off, t->len)) < 0)
        return r;
    drop(p);
    t = peek(p);
    if (!is_char(t, '}'))
        return syntax_error(p, t, "'}'");
    if ((r = need(p, depth + 3, t)) < 0)
        return r;
    drop(p);
    const char *v = p->getenv_fn ? p->getenv_fn(p->ctx, p->var.p) : NULL;
    return v ? str_add(p, out, v, strlen(v)) : 0;
}

/* zend_ini_escape_string() for a "..." piece */
static int add_quoted(ini_parser_t *p, ini_str_t *out, const unsigned char *s, size_t n)
{
    int r = str_reserve(p, out, n);
    if (r < 0)
        return r;
    char *d = out->p + out->len;
    for (size_t k = 0; k < n; k++) {
        if (s[k] != '\\') {
            *d++ = (char)s[k];
        } else if (++k >= n) {
            *d++ = '\\';
        } else if (s[k] == '"' || s[k] == '\\' || s[k] == '$') {
            *d++ = (char)s[k];
        } else {
            *d++ = '\\';
            *d++ = (char)s[k];
        }
    }
    out->len = (size_t)(d - out->p);
    out->p[out->len] = '\0';
    return 0;
}

/*
 * var_string_list (lookup: constants resolved, as in values and offsets) or
 * var_string_list_section (no lookup), its first token pushed at depth + 1.
 * Appends to `out`; stops at the first token that cannot continue the list
 * and leaves it as the lookahead.
 */
static int parse_vsl(ini_parser_t *p, ini_str_t *out, bool lookup, size_t depth)
{
    int r = 0;
    size_t d = depth; /* after the first piece the list itself sits at +1 */
    for (ini_tok_t *t = peek(p); r == 0 && starts_vsl(t); t = peek(p), d = depth + 1) {
        if (t->type == T_DOLLAR_CURLY) {
            r = parse_var(p, out, d);
        } else if (is_char(t, '"')) {
            /* '"' at +1, the empty encapsed_list at +2, its pieces at +3 */
            if ((r = need(p, d + 2, t)) < 0)
                return r;
            drop(p);
            for (t = peek(p); r == 0 && !is_char(t, '"'); t = peek(p)) {
                if (t->type == T_DOLLAR_CURLY) {
                    r = parse_var(p, out, d + 2);
                } else if (t->type == T_QUOTED_STRING) {
                    if ((r = need(p, d + 3, t)) == 0)
                        r = add_quoted(p, out, p->b + t->off, t->len);
                    drop(p);
                } else {
                    return syntax_error(p, t, "TC_DOLLAR_CURLY or TC_QUOTED_STRING or '\"'");
                }
            }
            if (r == 0)
                r = need(p, d + 3, t);
            drop(p);
        } else {
            const char *c =
                lookup && t->type == T_CONSTANT ? constant(p->b + t->off, t->len) : NULL;
            if ((r = need(p, d + 1, t)) == 0)
                r = c ? str_add(p, out, c, strlen(c)) : str_add(p, out, p->b + t->off, t->len);
            drop(p);
        }
    }
    return r;
}

/* glibc atoi(): (int)strtol(s, NULL, 10), saturating then truncated. */
static int32_t php_atoi(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
        i++;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    uint64_t acc = 0, cap = neg ? (uint64_t)1 << 63 : ((uint64_t)1 << 63) - 1;
    for (; i < n && is_digit((unsigned char)s[i]); i++) {
        acc = acc * 10 + (uint64_t)(s[i] - '0');
        if (acc > cap)
            acc = cap; /* strtol saturates; later digits cannot lower it */
    }
    uint64_t v = neg ? (uint64_t)0 - acc : acc;
    return (int32_t)(uint32_t)v; /* gcc/clang define this as modulo 2^32 */
}

/* An expression value: a string at val[off..len), or an int. */
typedef struct ini_ev {
    bool is_int;
    int32_t i;
    size_t off;
} ini_ev_t;

/* get_int_val(): atoi() of the string. The string is dropped from the value
 * buffer: operands are consumed left to right, so it is always the tail. */
static int32_t ev_int(ini_parser_t *p, ini_ev_t *v)
{
    if (!v->is_int) {
        v->i = php_atoi(p->val.p + v->off, p->val.len - v->off);
        p->val.len = v->off;
        p->val.p[p->val.len] = '\0';
        v->is_int = true;
    }
    return v->i;
}

/* A pending piece of an expression: '~' or '!' waiting for its operand,
 * '(' waiting for its expr and ')', or a left operand and a binary op. */
typedef struct ini_frame {
    unsigned char op; /* '~' '!' '(' or '|' '&' '^' */
    int32_t left;
} ini_frame_t;

static bool is_binop(const ini_tok_t *t)
{
    return is_char(t, '|') || is_char(t, '&') || is_char(t, '^');
}

static int push_frame(ini_parser_t *p, size_t nf, unsigned op, int32_t left)
{
    if (nf == p->nframes) {
        size_t n = p->nframes ? p->nframes * 2 : 16;
        ini_frame_t *f = rf_realloc(p->frames, n * sizeof(*f));
        if (!f) {
            snprintf(p->err, p->errlen, "out of memory");
            return -ENOMEM;
        }
        p->frames = f;
        p->nframes = n;
    }
    p->frames[nf].op = (unsigned char)op;
    p->frames[nf].left = left;
    return 0;
}

/*
 * expr, evaluated as bison's LR automaton does but with an explicit stack,
 * so input cannot drive C recursion: '|' '&' '^' share one left-associative
 * level, '~' '!' bind tighter, and a parenthesised expr keeps its string
 * when no operator touches it. The expr's first token goes at depth + 1.
 */
static int parse_expr(ini_parser_t *p, ini_ev_t *v, size_t depth)
{
    size_t nf = 0;
    int r;
    ini_tok_t *t;

operand:
    t = peek(p);
    if (is_char(t, '~') || is_char(t, '!') || is_char(t, '(')) {
        if ((r = need(p, depth + 1, t)) < 0 || (r = push_frame(p, nf, t->ch, 0)) < 0)
            return r;
        nf++;
        depth++;
        drop(p);
        goto operand;
    }
    if (!starts_vsl(t))
        return syntax_error(p, t, NULL);
    v->is_int = false;
    v->off = p->val.len;
    if ((r = parse_vsl(p, &p->val, true, depth)) < 0)
        return r;

    for (;;) { /* v is an expr sitting at depth + 1 */
        t = peek(p);
        ini_frame_t *f = nf ? &p->frames[nf - 1] : NULL;
        if (f && (f->op == '~' || f->op == '!')) {
            int32_t x = ev_int(p, v);
            v->i = f->op == '~' ? (int32_t) ~(uint32_t)x : !x;
            nf--;
            depth--;
        } else if (f && f->op != '(') {
            int32_t b = ev_int(p, v);
            v->i = f->op == '|' ? (f->left | b) : f->op == '&' ? (f->left & b) : (f->left ^ b);
            nf--;
            depth -= 2;
        } else if (is_binop(t)) {
            if ((r = need(p, depth + 2, t)) < 0 || (r = push_frame(p, nf, t->ch, ev_int(p, v))) < 0)
                return r;
            nf++;
            depth += 2;
            drop(p);
            goto operand;
        } else if (f) { /* '(' expr, which only ')' may follow */
            if (!is_char(t, ')'))
                return syntax_error(p, t, "'^' or '|' or '&' or ')'");
            if ((r = need(p, depth + 2, t)) < 0)
                return r;
            drop(p);
            nf--;
            depth--;
        } else {
            return 0;
        }
    }
}

/* string_or_value, after '=' (`depth` states below the value). Leaves the
 * result in p->val. */
static int parse_value(ini_parser_t *p, size_t depth)
{
    ini_tok_t *t = peek(p);
    p->val.len = 0;
    int r = str_reserve(p, &p->val, 0);
    if (r < 0)
        return r;
    p->val.p[0] = '\0';
    switch (t->type) {
    case T_BOOL_TRUE:
        drop(p);
        return str_set(p, &p->val, "1", 1);
    case T_BOOL_FALSE:
    case T_NULL_NULL:
    case T_END_OF_LINE:
        drop(p);
        return 0;
    default:
        break;
    }
    ini_ev_t v = {.is_int = false, .i = 0, .off = 0};
    if ((r = parse_expr(p, &v, depth)) < 0)
        return r;
    if (v.is_int) {
        char num[16];
        int n = snprintf(num, sizeof(num), "%d", (int)v.i);
        r = str_set(p, &p->val, num, (size_t)n);
    }
    return r;
}

static int emit(ini_parser_t *p, bool array, bool bare)
{
    rf_ini_entry_t e = {
        .section = p->have_sect ? p->sect.p : NULL,
        .name = p->name.p,
        .name_len = p->name.len,
        .key = array ? p->key.p : NULL,
        .value = bare ? NULL : p->val.p,
        .value_len = bare ? 0 : p->val.len,
        .line = p->stmt_line,
    };
    if (bare && !(p->flags & RF_INI_BARE)) {
        snprintf(p->err, p->errlen, "value is NULL for a ZEND_INI_PARSER_ENTRY");
        p->err_line = p->stmt_line;
        return -EINVAL;
    }
    if (!p->on_entry)
        return 0;
    int r = p->on_entry(p->ctx, &e);
    if (r < 0) {
        p->err[0] = '\0';
        p->err_line = p->stmt_line;
    }
    return r < 0 ? r : 0;
}

/* statement_list over the current buffer */
static int parse_statements(ini_parser_t *p)
{
    for (;;) {
        ini_tok_t *t = peek(p);
        int r;
        p->stmt_line = line_at(p, t->pos);
        switch (t->type) {
        case T_END:
            return 0;
        case T_END_OF_LINE:
            drop(p);
            break;
        case T_SECTION:
            drop(p);
            p->sect.len = 0;
            if ((r = str_reserve(p, &p->sect, 0)) < 0 || (r = parse_vsl(p, &p->sect, false, 3)) < 0)
                return r;
            p->sect.p[p->sect.len] = '\0';
            t = peek(p);
            if (!is_char(t, ']'))
                return syntax_error(p, t, "']'");
            drop(p);
            p->have_sect = true;
            if (p->on_section && (r = p->on_section(p->ctx, p->sect.p, p->stmt_line)) < 0) {
                p->err[0] = '\0';
                p->err_line = p->stmt_line;
                return r;
            }
            break;
        case T_LABEL:
            if ((r = str_set(p, &p->name, p->b + t->off, t->len)) < 0)
                return r;
            drop(p);
            t = peek(p);
            if (!is_char(t, '=')) {
                if ((r = emit(p, false, true)) < 0)
                    return r;
                break;
            }
            drop(p);
            if ((r = parse_value(p, 4)) < 0 || (r = emit(p, false, false)) < 0)
                return r;
            break;
        case T_OFFSET:
            if ((r = str_set(p, &p->name, p->b + t->off, t->len)) < 0)
                return r;
            drop(p);
            p->key.len = 0;
            if ((r = str_reserve(p, &p->key, 0)) < 0 || (r = parse_vsl(p, &p->key, true, 3)) < 0)
                return r;
            p->key.p[p->key.len] = '\0';
            t = peek(p);
            if (!is_char(t, ']'))
                return syntax_error(p, t, "']'");
            drop(p);
            t = peek(p);
            if (!is_char(t, '='))
                return syntax_error(p, t, "'='");
            drop(p);
            if ((r = parse_value(p, 6)) < 0 || (r = emit(p, true, false)) < 0)
                return r;
            break;
        default:
            return syntax_error(p, t, NULL);
        }
    }
}

/* One zend_parse_ini_string() call over p->b[0..lim). */
static int parse_buffer(ini_parser_t *p, const unsigned char *b, size_t lim)
{
    p->b = b;
    p->lim = lim;
    p->cur = 0;
    p->cond = C_INITIAL;
    p->depth = 0;
    p->have_la = false;
    return parse_statements(p);
}

int rf_ini_parse_ex(const char *text, size_t len, unsigned flags, rf_ini_section_fn on_section,
                    rf_ini_entry_fn on_entry, rf_ini_getenv_fn getenv_fn, void *ctx, char *err,
                    size_t errlen, int *err_line)
{
    char dummy[1];
    ini_parser_t p = {
        .flags = flags,
        .on_section = on_section,
        .on_entry = on_entry,
        .getenv_fn = getenv_fn,
        .ctx = ctx,
        .err = err && errlen ? err : dummy,
        .errlen = err && errlen ? errlen : sizeof(dummy),
        .nl_line = 1,
    };
    int r = 0;
    p.err[0] = '\0';
    if (!text)
        len = 0;

    if (flags & RF_INI_WHOLE) {
        /* Zend scans up to strlen(): the first NUL ends the text */
        const char *nul = len ? memchr(text, '\0', len) : NULL;
        size_t lim = nul ? (size_t)(nul - text) : len;
        unsigned char *buf = rf_malloc(lim + 1);
        if (!buf) {
            snprintf(p.err, p.errlen, "out of memory");
            r = -ENOMEM;
        } else {
            if (lim)
                memcpy(buf, text, lim);
            buf[lim] = '\0';
            p.text = (const char *)buf;
            r = parse_buffer(&p, buf, lim);
            rf_free(buf);
        }
    } else {
        /* fpm_conf_load_ini_file(): each line + '\n', empty lines skipped */
        unsigned char *buf = len ? rf_malloc(len + 2) : NULL;
        if (len && !buf) {
            snprintf(p.err, p.errlen, "out of memory");
            r = -ENOMEM;
        }
        size_t pos = 0;
        for (int line = 1; r == 0 && pos < len; line++) {
            const char *nl = memchr(text + pos, '\n', len - pos);
            size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
            if (n) {
                const char *nul = memchr(text + pos, '\0', n);
                size_t lim = nul ? (size_t)(nul - (text + pos)) : n + 1;
                memcpy(buf, text + pos, n);
                buf[n] = '\n';
                buf[lim] = '\0';
                p.line = line;
                r = parse_buffer(&p, buf, lim);
            }
            pos += n + 1;
        }
        rf_free(buf);
    }

    rf_free(p.name.p);
    rf_free(p.key.p);
    rf_free(p.val.p);
    rf_free(p.var.p);
    rf_free(p.sect.p);
    rf_free(p.frames);
    if (r < 0 && err_line)
        *err_line = p.err_line;
    return r;
}

int rf_ini_parse(const char *text, size_t len, rf_ini_section_fn on_section,
                 rf_ini_entry_fn on_entry, rf_ini_getenv_fn getenv_fn, void *ctx, char *err,
                 size_t errlen, int *err_line)
{
    return rf_ini_parse_ex(text, len, 0, on_section, on_entry, getenv_fn, ctx, err, errlen,
                           err_line);
}

/* ---------------------------------------------------------------- helpers */

int rf_ini_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"", "0", "no", "none", "false", "off"};
    if (!v)
        return -EINVAL;
    for (size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++)
        if (!strcmp(v, yes[k])) {
            *out = 1;
            return 0;
        }
    for (size_t k = 0; k < sizeof(no) / sizeof(no[0]); k++)
        if (!strcmp(v, no[k])) {
            *out = 0;
            return 0;
        }
    return -EINVAL;
}

int rf_ini_int(const char *v, long *out)
{
    if (!v)
        return -EINVAL;
    for (const char *c = v; *c; c++)
        if (!is_digit((unsigned char)*c) && !(c == v && *c == '-'))
            return -EINVAL;
    *out = php_atoi(v, strlen(v));
    return 0;
}

int rf_ini_time(const char *v, long *seconds)
{
    size_t n = v ? strlen(v) : 0;
    int32_t mul;
    if (!n)
        return -EINVAL;
    switch (v[n - 1]) {
    case 'm':
        mul = 60;
        break;
    case 'h':
        mul = 60 * 60;
        break;
    case 'd':
        mul = 24 * 60 * 60;
        break;
    case 's':
        mul = 1;
        break;
    default:
        if (!is_digit((unsigned char)v[n - 1]))
            return -EINVAL;
        mul = 1;
        n++; /* keep the digit */
        break;
    }
    /* php-fpm multiplies two ints: wrap modulo 2^32 the way it does */
    uint32_t r = (uint32_t)php_atoi(v, n - 1) * (uint32_t)mul;
    *seconds = (int32_t)r;
    return 0;
}
