// Unit tests for core/rf_ini.c, php-fpm's INI dialect. Expected values are
// PHP 8.2's own: scanner and parser results from parse_ini_string(...,
// INI_SCANNER_NORMAL) run on the same lines (plus the '\n' php-fpm appends),
// loader behaviour (bare names, '' values, helpers) from php-fpm8.2 -t/-tt.
// Every input below was re-checked against php 8.2 when it was written. The
// fuzz corpus (tests/fuzz/corpus/ini, found via RF_SOURCE_DIR) replays last.
#include "rf_ini.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace
{

struct Result {
    int rc = 0;
    std::string err;
    int line = 0;
    std::vector<std::string> ev; // "S:name@line", "E:sec|name[key]=value@line"
};

struct Ctx {
    std::map<std::string, std::string> env;
    Result *res = nullptr;
    int stop_after = -1; // stop with -42 at this event index
};

std::string show(const char *s, size_t n)
{
    std::string o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\n')
            o += "\\n";
        else if (c == '\r')
            o += "\\r";
        else if (c == '\t')
            o += "\\t";
        else if (c < 32 || c >= 127) {
            char b[8];
            snprintf(b, sizeof(b), "\\x%02x", c);
            o += b;
        } else
            o += static_cast<char>(c);
    }
    return o;
}

int on_section(void *vctx, const char *s, int line)
{
    auto *c = static_cast<Ctx *>(vctx);
    c->res->ev.push_back("S:" + show(s, strlen(s)) + "@" + std::to_string(line));
    if (c->stop_after >= 0 && static_cast<int>(c->res->ev.size()) > c->stop_after)
        return -42;
    return 0;
}

int on_entry(void *vctx, const rf_ini_entry_t *e)
{
    auto *c = static_cast<Ctx *>(vctx);
    EXPECT_EQ(strlen(e->name), e->name_len);
    if (e->value) {
        EXPECT_EQ(strlen(e->value), e->value_len);
    }
    std::string s = "E:" + std::string(e->section ? show(e->section, strlen(e->section)) : "-") +
                    "|" + show(e->name, e->name_len);
    if (e->key)
        s += "[" + show(e->key, strlen(e->key)) + "]";
    s += "=" + (e->value ? show(e->value, e->value_len) : std::string("<NULL>"));
    s += "@" + std::to_string(e->line);
    c->res->ev.push_back(s);
    if (c->stop_after >= 0 && static_cast<int>(c->res->ev.size()) > c->stop_after)
        return -42;
    return 0;
}

const char *lookup(void *vctx, const char *name)
{
    auto *c = static_cast<Ctx *>(vctx);
    auto it = c->env.find(name);
    return it == c->env.end() ? nullptr : it->second.c_str();
}

Result parse(const std::string &text, unsigned flags = 0, Ctx ctx = Ctx())
{
    Result r;
    ctx.res = &r;
    if (ctx.env.empty())
        ctx.env = {{"HOME", "/root"},
                   {"USER", "www-data"},
                   {"PORT", "9000"},
                   {"E", "ev"},
                   {"A:-b", "fallback-literal"}};
    char err[256];
    memset(err, 'x', sizeof(err));
    r.line = -1;
    r.rc = rf_ini_parse_ex(text.data(), text.size(), flags, on_section, on_entry, lookup, &ctx, err,
                           sizeof(err), &r.line);
    r.err = err;
    return r;
}

// The value of `a = <v>`, or "ERR:<message>".
std::string val(const std::string &v)
{
    Result r = parse("a = " + v, RF_INI_BARE);
    if (r.rc < 0)
        return "ERR:" + r.err;
    if (r.ev.size() != 1)
        return "EVENTS:" + std::to_string(r.ev.size());
    const std::string &e = r.ev[0];
    size_t eq = e.find('='), at = e.rfind('@');
    return e.substr(eq + 1, at - eq - 1);
}

// Message of a failing one-line parse.
std::string error_of(const std::string &text, unsigned flags = RF_INI_BARE)
{
    Result r = parse(text, flags);
    EXPECT_LT(r.rc, 0) << show(text.data(), text.size());
    return r.err;
}

std::string slurp(const char *path, bool *ok)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    *ok = static_cast<bool>(f);
    return ss.str();
}

} // namespace

// ------------------------------------------------------------------ sections

TEST(RfIni, Sections)
{
    Result r = parse("[global]\n[www]\n[ a b ]\n[${USER}]\n[x\"y\"'z']\n[E_ALL]\n[]\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"S:global@1", "S:www@2",   "S: a b @3", "S:www-data@4",
                                     "S:xyz@5",    "S:E_ALL@6", "S:@7"};
    EXPECT_EQ(r.ev, want); // constants are not looked up in section names
}

TEST(RfIni, SectionIsPassedWithEntries)
{
    Result r = parse("a = 1\n[global]\npid = /run/x.pid\n[www]\nuser = nobody\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=1@1", "S:global@2", "E:global|pid=/run/x.pid@3",
                                     "S:www@4", "E:www|user=nobody@5"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, SectionFollowedByMoreOnTheSameLine)
{
    // "]" eats blanks and a line end; whatever follows starts a statement
    Result r = parse("[a] b = 1\n[s] [t]\n[u]]=2\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"S:a@1", "E:a|b=1@1", "S:s@2", "S:t@2", "S:u@3", "E:u|]=2@3"};
    EXPECT_EQ(r.ev, want);
}

// --------------------------------------------------------------- key = value

TEST(RfIni, NamesAndValuesAreTrimmed)
{
    Result r = parse(" a = b \n\tc\t=\td\t\nx y = p q\npm.max_children=5\nX=1\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=b@1", "E:-|c=d@2", "E:-|x y=p q@3",
                                     "E:-|pm.max_children=5@4", "E:-|X=1@5"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, TrailingXInNameIsKept)
{
    // regression: Zend's EAT_TRAILING_WHITESPACE_EX('X') means "no extra
    // char", and an early version stripped a literal trailing 'X'
    Result r = parse("abcX = 1\nXX[kX] = 2\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|abcX=1@1", "E:-|XX[kX]=2@2"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, EmptyValues)
{
    EXPECT_EQ(val(""), "");
    EXPECT_EQ(val("   "), "");
    EXPECT_EQ(val("; comment"), "");
    EXPECT_EQ(val("\"\""), "");
    EXPECT_EQ(val("\" x \""), " x ");
}

TEST(RfIni, PlainValueCharacters)
{
    EXPECT_EQ(val("/run/php/php8.2-fpm.sock"), "/run/php/php8.2-fpm.sock");
    EXPECT_EQ(val("127.0.0.1:9000"), "127.0.0.1:9000");
    EXPECT_EQ(val("[::1]:9000"), "[::1]:9000");
    EXPECT_EQ(val("x{y}z"), "x{y}z");
    EXPECT_EQ(val("a\\b"), "a\\b");
    EXPECT_EQ(val("log/$pool.access.log"), "log/$pool.access.log");
    EXPECT_EQ(val("$$"), "$$");
    EXPECT_EQ(val("x\ty  z"), "x\\ty  z");
    EXPECT_EQ(val("/usr/sbin/sendmail -t -i -f www@my.domain.com"),
              "/usr/sbin/sendmail -t -i -f www@my.domain.com");
}

TEST(RfIni, LoneDollarSwallowsTheLineEnd)
{
    // "$" + any byte but '{' is a literal: even the '\n' php-fpm appends
    EXPECT_EQ(val("$"), "$\\n");
    EXPECT_EQ(val("x$"), "x$\\n");
}

// -------------------------------------------------------------------- arrays

TEST(RfIni, Arrays)
{
    Result r = parse("[www]\nenv[PATH] = /usr/local/bin:/usr/bin:/bin\n"
                     "php_value[error_reporting] = E_ALL & ~E_NOTICE\n"
                     "access.suppress_path[] = /ping\nx[ ] = 1\n"
                     "php_admin_flag[log_errors] = on\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"S:www@1",
                                     "E:www|env[PATH]=/usr/local/bin:/usr/bin:/bin@2",
                                     "E:www|php_value[error_reporting]=32759@3",
                                     "E:www|access.suppress_path[]=/ping@4",
                                     "E:www|x[]=1@5",
                                     "E:www|php_admin_flag[log_errors]=1@6"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, ArrayKeys)
{
    Result r = parse("a[E_ALL]=1\na[TRUE]=2\na[yes]=3\na[${USER}]=4\na['q' ]=5\na[\"d\"]=6\n"
                     "a[x ]=7\na [ y]=8\na[x y]=9\na[x=y&z]=10\na[x\\]y]=11\na[null]=12\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a[32767]=1@1",    "E:-|a[1]=2@2",       "E:-|a[yes]=3@3",
                                     "E:-|a[www-data]=4@4", "E:-|a[q]=5@5",       "E:-|a[d]=6@6",
                                     "E:-|a[x ]=7@7",       "E:-|a[y]=8@8",       "E:-|a[x y]=9@9",
                                     "E:-|a[x=y&z]=10@10",  "E:-|a[x\\]y]=11@11", "E:-|a[]=12@12"};
    EXPECT_EQ(r.ev, want);
}

// ------------------------------------------------------------------ comments

TEST(RfIni, Comments)
{
    Result r = parse("; full line\n  ; indented\nlisten = 127.0.0.1:9000 ; note\na=b;c\n"
                     "q = \"x;y\" ; real comment\nr = 'p;q'\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|listen=127.0.0.1:9000@3", "E:-|a=b@4", "E:-|q=x;y@5",
                                     "E:-|r=p;q@6"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, HashLineIsFatalLikePhpFpm)
{
    Result r = parse("[www]\nuser = nobody\n#foo\nlisten = x\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.err, "value is NULL for a ZEND_INI_PARSER_ENTRY");
    EXPECT_EQ(r.line, 3);
    std::vector<std::string> want = {"S:www@1", "E:www|user=nobody@2"};
    EXPECT_EQ(r.ev, want);
    // any bare name is the same entry without a value
    EXPECT_EQ(error_of("foo\n", 0), "value is NULL for a ZEND_INI_PARSER_ENTRY");
}

TEST(RfIni, HashWithEqualsIsAnOrdinaryName)
{
    // php-fpm then says "unknown entry '# foo'"
    Result r = parse("# foo = bar\n");
    ASSERT_EQ(r.rc, 0);
    ASSERT_EQ(r.ev.size(), 1u);
    EXPECT_EQ(r.ev[0], "E:-|# foo=bar@1");
}

TEST(RfIni, BareFlagDeliversNullValue)
{
    Result r = parse("#foo\n  bar  \n", RF_INI_BARE);
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|#foo=<NULL>@1", "E:-|bar=<NULL>@2"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, EmptySingleQuotesLeaveABareQuote)
{
    // '' is no raw string: the value ends (empty) and "'" becomes a bare
    // name. php-fpm: php_value[x] = '' -> "value is NULL ...", while
    // env[X] = '' fails earlier in the env setter with "empty value".
    Result r = parse("[www]\nphp_value[x] = ''\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.err, "value is NULL for a ZEND_INI_PARSER_ENTRY");
    EXPECT_EQ(r.line, 2);
    std::vector<std::string> want = {"S:www@1", "E:www|php_value[x]=@2"};
    EXPECT_EQ(r.ev, want);
}

// -------------------------------------------------------------------- quotes

TEST(RfIni, DoubleQuotes)
{
    EXPECT_EQ(val("\"%R - %u %t \\\"%m %r%Q%q\\\" %s %f %{milli}d %{kilo}M %C%%\""),
              "%R - %u %t \"%m %r%Q%q\" %s %f %{milli}d %{kilo}M %C%%");
    EXPECT_EQ(val("\"a\\\\b\""), "a\\b");
    EXPECT_EQ(val("\"a\\$b\""), "a$b");
    EXPECT_EQ(val("\"a\\${E}b\""), "a${E}b");
    EXPECT_EQ(val("\"a\\nb\""), "a\\nb"); // unknown escapes stay as they are
    EXPECT_EQ(val("\"C:\\path\\\""), "C:\\path\\");
    EXPECT_EQ(val("\"PONG!\""), "PONG!");
    EXPECT_EQ(val("\"a|b&c\""), "a|b&c");
    EXPECT_EQ(val("\"a\rb\""), "a\\rb");
}

TEST(RfIni, SingleQuotesAreRaw)
{
    EXPECT_EQ(val("'${E} \\n \"x\"'"), "${E} \\n \"x\"");
    EXPECT_EQ(val("'PONG!'"), "PONG!");
}

TEST(RfIni, AdjacentPiecesConcatenate)
{
    EXPECT_EQ(val("\"x\" y \"z\""), "xyz"); // blanks before '"' and after it go
    EXPECT_EQ(val("'x' 'y'"), "x y");       // but not around raw strings
    EXPECT_EQ(val("x'y'z"), "xyz");
    EXPECT_EQ(val("pre\"${USER}\"post"), "prewww-datapost");
}

// --------------------------------------------------------- ${VAR} expansion

TEST(RfIni, EnvExpansion)
{
    EXPECT_EQ(val("127.0.0.1:${PORT}"), "127.0.0.1:9000");
    EXPECT_EQ(val("\"${USER}-$pool\""), "www-data-$pool");
    EXPECT_EQ(val("${HOME}/x"), "/root/x");
    EXPECT_EQ(val("${NOPE}"), "");
    EXPECT_EQ(val("x${NOPE}y"), "xy");
    EXPECT_EQ(val("${ E }"), "ev"); // the name is trimmed
    EXPECT_EQ(val("${E} x"), "ev x");
    EXPECT_EQ(val("'${E}'"), "${E}");
    // PHP 8.2 has no ${VAR:-default}: the whole text is the variable name
    EXPECT_EQ(val("${A:-b}"), "fallback-literal");
    EXPECT_EQ(val("${E:-b}"), "");
}

TEST(RfIni, EnvWithoutCallback)
{
    char err[64];
    int line = 0;
    struct Got {
        std::string v;
    } got;
    auto cb = [](void *c, const rf_ini_entry_t *e) {
        static_cast<Got *>(c)->v = e->value;
        return 0;
    };
    const char text[] = "a = x${HOME}y";
    ASSERT_EQ(
        rf_ini_parse(text, sizeof(text) - 1, nullptr, cb, nullptr, &got, err, sizeof(err), &line),
        0);
    EXPECT_EQ(got.v, "xy");
}

// ---------------------------------------------------- operators & constants

TEST(RfIni, OperatorsAndConstants)
{
    const std::pair<const char *, const char *> cases[] = {
        {"E_ALL & ~E_NOTICE", "32759"},
        {"E_ALL & ~E_DEPRECATED & ~E_STRICT", "22527"},
        {"E_ALL&~E_NOTICE ; trailing comment", "32759"},
        {"E_ERROR | E_WARNING", "3"},
        {"E_ALL", "32767"},
        {"E_USER_DEPRECATED", "16384"},
        {"E_RECOVERABLE_ERROR", "4096"},
        {"(1|2)", "3"},
        {"~0", "-1"},
        {"~ 1", "-2"},
        {"!0", "1"},
        {"!5", "0"},
        {"!!5", "1"},
        {"1|2&4", "0"}, // one precedence level, left to right
        {"1&2|4", "4"},
        {"1^3|4", "6"},
        {"~1|2", "-2"}, // ~ binds tighter
        {"~(1|2)", "-4"},
        {"2147483648|0", "-2147483648"}, // atoi() into an int
        {"-2147483649|0", "2147483647"},
        {"99999999999999999999|0", "-1"},
        {"PHP_INT_MAX|0", "-1"},
        {"0x10|0", "0"},
        {"7abc|0", "7"},
        {"\" 12\"|0", "12"},
        {"x|1", "1"},
        {"(  1  )", "1  "}, // no operator: the string survives the parentheses
        {"((1))", "1"},
        {"E_ALLx", "E_ALLx"},
        {"1E_ALL", "1E_ALL"},
        {"x E_ALL", "x 32767"},
        {"E_ALL\"x\"", "32767x"},
        {"E_ALL.x", "E_ALL.x"},
        {"e_all", "e_all"}, // constants are case-sensitive
        {"PHP_EOL", "\\n"},
        {"DIRECTORY_SEPARATOR", "/"},
        {"SOME_UNKNOWN_CONSTANT", "SOME_UNKNOWN_CONSTANT"},
        {"dynamic", "dynamic"},
    };
    for (const auto &c : cases)
        EXPECT_EQ(val(c.first), c.second) << c.first;
}

TEST(RfIni, BoolAndNullKeywords)
{
    for (const char *t : {"yes", "on", "true", "YES", "On", "tRuE", "yes  ", "yes ; c"})
        EXPECT_EQ(val(t), "1") << t;
    for (const char *f : {"no", "off", "false", "none", "null", "NULL", "Off", "None "})
        EXPECT_EQ(val(f), "") << f;
    EXPECT_EQ(val("yesx"), "yesx");
    EXPECT_EQ(val("no_x"), "no_x");
    EXPECT_EQ(val("\"yes\""), "yes"); // quoted: untouched
    EXPECT_EQ(val("TRUE"), "1");
}

TEST(RfIni, KeywordsOutsideValues)
{
    EXPECT_EQ(error_of("yes = 1"), "syntax error, unexpected BOOL_TRUE");
    EXPECT_EQ(error_of("null = 1"), "syntax error, unexpected NULL_NULL");
    EXPECT_EQ(error_of("a = yes no"), "syntax error, unexpected BOOL_FALSE");
    EXPECT_EQ(error_of("a = x yes"), "syntax error, unexpected BOOL_TRUE");
    EXPECT_EQ(error_of("a = yes|1"), "syntax error, unexpected '|'");
    // a leading blank makes " yes" a longer label match than the keyword
    Result r = parse(" yes = 1\nyes x = 2\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|yes=1@1", "E:-|yes x=2@2"};
    EXPECT_EQ(r.ev, want);
}

// -------------------------------------------------------------------- errors

TEST(RfIni, PongBangIsASyntaxError)
{
    Result r = parse("[www]\nping.path = /ping\nping.response = PONG!\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.err, "syntax error, unexpected '!'");
    EXPECT_EQ(r.line, 3);
    EXPECT_EQ(val("\"PONG!\""), "PONG!");
}

TEST(RfIni, SyntaxErrorMessages)
{
    const std::pair<const char *, const char *> cases[] = {
        {"a = (1", "syntax error, unexpected END_OF_LINE, expecting '^' or '|' or '&' or ')'"},
        {"a = 1)", "syntax error, unexpected ')'"},
        {"a = (1)x", "syntax error, unexpected TC_CONSTANT"},
        {"a = (1)12", "syntax error, unexpected TC_NUMBER"},
        {"a = (1)-1.5", "syntax error, unexpected TC_STRING"},
        {"a = (1)'r'", "syntax error, unexpected TC_RAW"},
        {"a = (1)${E}", "syntax error, unexpected TC_DOLLAR_CURLY"},
        {"a = (1)\"q\"", "syntax error, unexpected '\"'"},
        {"a = |1", "syntax error, unexpected '|'"},
        {"a = ~", "syntax error, unexpected END_OF_LINE"},
        {"a = x(", "syntax error, unexpected '('"},
        {"a = b = c", "syntax error, unexpected '='"},
        {"= 1", "syntax error, unexpected '='"},
        {"\"a\" = 1", "syntax error, unexpected '\"'"},
        {"a{b = 1", "syntax error, unexpected '{'"},
        {"[a", "syntax error, unexpected end of file, expecting ']'"},
        {"[a;b]", "syntax error, unexpected end of file, expecting ']'"},
        {"a[x = 1", "syntax error, unexpected end of file, expecting ']'"},
        {"a[x]", "syntax error, unexpected END_OF_LINE, expecting '='"},
        {"a[x] y = 1", "syntax error, unexpected TC_LABEL, expecting '='"},
        {"a[x][y] = 1", "syntax error, unexpected TC_SECTION, expecting '='"},
        {"a = ${", "syntax error, unexpected end of file, expecting TC_VARNAME"},
        {"a = ${}", "syntax error, unexpected '}', expecting TC_VARNAME"},
        {"a = ${E", "syntax error, unexpected end of file, expecting '}'"},
        {"a = \"abc",
         "syntax error, unexpected end of file, expecting TC_DOLLAR_CURLY or TC_QUOTED_STRING or "
         "'\"'"},
        {"a = 'abc", "syntax error, unexpected end of file"},
    };
    for (const auto &c : cases)
        EXPECT_EQ(error_of(c.first), c.second) << c.first;
}

TEST(RfIni, ErrorLineNumbersArePhysicalLines)
{
    Result r = parse("; one\n\n[www]\r\n\r\nlisten = 9000\r\npm = (static\r\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.line, 6);
    EXPECT_EQ(r.err, "syntax error, unexpected END_OF_LINE, expecting '^' or '|' or '&' or ')'");
    std::vector<std::string> want = {"S:www@3", "E:www|listen=9000@5"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, StatementBeforeAnErrorOnTheSameLineIsDelivered)
{
    // like bison: "a=1" is reduced (and php-fpm's callback runs) before ')'
    Result r = parse("a = 1 )\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.err, "syntax error, unexpected ')'");
    ASSERT_EQ(r.ev.size(), 1u);
    EXPECT_EQ(r.ev[0], "E:-|a=1 @1");
}

TEST(RfIni, ErrorBufferHandling)
{
    char small[12];
    int line = 0;
    const char text[] = "\n\na = PONG!";
    EXPECT_EQ(rf_ini_parse(text, sizeof(text) - 1, nullptr, nullptr, nullptr, nullptr, small,
                           sizeof(small), &line),
              -EINVAL);
    EXPECT_STREQ(small, "syntax erro");
    EXPECT_EQ(line, 3);
    // err and err_line are optional
    EXPECT_EQ(rf_ini_parse(text, sizeof(text) - 1, nullptr, nullptr, nullptr, nullptr, nullptr, 0,
                           nullptr),
              -EINVAL);
    EXPECT_EQ(rf_ini_parse(nullptr, 0, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr), 0);
}

TEST(RfIni, CallbackStopsTheParse)
{
    Ctx ctx;
    ctx.stop_after = 1;
    Result r = parse("a = 1\n[s]\nb = 2\n", 0, ctx);
    EXPECT_EQ(r.rc, -42);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.line, 2);
    EXPECT_EQ(r.ev.size(), 2u);
}

// ------------------------------------------------------------- line handling

TEST(RfIni, CrlfLineEndings)
{
    Result r = parse("[www]\r\nlisten = /run/x.sock\r\nenv[A] = \"q\"  \r\na = 1 ; c\r\n\r\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"S:www@1", "E:www|listen=/run/x.sock@2", "E:www|env[A]=q@3",
                                     "E:www|a=1@4"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, CarriageReturnSplitsALine)
{
    // Zend takes a lone \r as a line end: two statements, one physical line
    Result r = parse("a=1\rb=2\n[s]\r[t]\rc=3\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=1@1", "E:-|b=2@1", "S:s@2", "S:t@2", "E:t|c=3@2"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, NulEndsItsLine)
{
    std::string text = "a = x";
    text += '\0';
    text += "garbage ! (\nb = 2\n";
    Result r = parse(text);
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=x@1", "E:-|b=2@2"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, LabelRunningIntoNulIsEndOfFile)
{
    // regression: PHP 8.2's LABEL class matches NUL, so a name cut by a NUL
    // makes re2c ask past the buffer: token 0 ends the parse quietly
    std::string text = "TRUE";
    text += '\0';
    text += "\nnone";
    text += '\0';
    Result r = parse(text);
    EXPECT_EQ(r.rc, 0);
    EXPECT_TRUE(r.ev.empty());
}

TEST(RfIni, ByteOrderMarkAtAnyLineStart)
{
    // each line is its own Zend parse, so each may start with a BOM
    Result r = parse("\xef\xbb\xbf[www]\n\xef\xbb\xbf"
                     "a = 1\nb = \xef\xbb\xbf\n");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"S:www@1", "E:www|a=1@2", "E:www|b=\\xef\\xbb\\xbf@3"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, LastLineWithoutNewline)
{
    Result r = parse("a = 1\nb = 2");
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=1@1", "E:-|b=2@2"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, NoMultiLineConstructs)
{
    Result r = parse("a = \"x\ny\"\n");
    EXPECT_EQ(r.rc, -EINVAL);
    EXPECT_EQ(r.line, 1);
    EXPECT_EQ(r.err, "syntax error, unexpected end of file, expecting TC_DOLLAR_CURLY or "
                     "TC_QUOTED_STRING or '\"'");
}

TEST(RfIni, WholeTextModeLikePhpValue)
{
    // PHP_VALUE is one Zend parse: quotes may span lines there
    Result r = parse("a = \"x\ny\"\nb = 'p\nq'\nc = E_ALL\n", RF_INI_WHOLE);
    ASSERT_EQ(r.rc, 0);
    std::vector<std::string> want = {"E:-|a=x\\ny@1", "E:-|b=p\\nq@3", "E:-|c=32767@5"};
    EXPECT_EQ(r.ev, want);
    Result e = parse("a = 1\nb = 2\nc = PONG!\n", RF_INI_WHOLE);
    EXPECT_EQ(e.rc, -EINVAL);
    EXPECT_EQ(e.line, 3);
    ASSERT_EQ(e.ev.size(), 3u); // "c = PONG" is reduced before the '!' fails
    EXPECT_EQ(e.ev[2], "E:-|c=PONG@3");
}

// -------------------------------------------------------------------- limits

TEST(RfIni, VeryLongLines)
{
    std::string big(1 << 20, 'v');
    Result r = parse("[www]\nphp_value[k] = " + big + " ; c\n" + std::string(300000, ';') +
                     "\nname" + std::string(100000, 'n') + " = \"" + big + "\"\n");
    ASSERT_EQ(r.rc, 0);
    ASSERT_EQ(r.ev.size(), 3u);
    EXPECT_EQ(r.ev[1], "E:www|php_value[k]=" + big + "@2");
    EXPECT_EQ(r.ev[2], "E:www|name" + std::string(100000, 'n') + "=" + big + "@4");

    std::string ops;
    for (int i = 0; i < 50000; i++)
        ops += "E_ALL | ";
    EXPECT_EQ(val(ops + "0"), "32767");
}

TEST(RfIni, ValueTooLong)
{
    Ctx ctx;
    ctx.env["BIG"] = std::string(RF_INI_MAX_VALUE / 2 + 1, 'b');
    Result r = parse("a = ${BIG}${BIG}\n", 0, ctx);
    EXPECT_EQ(r.rc, -E2BIG);
    EXPECT_EQ(r.err, "value too long");
}

TEST(RfIni, NestingLimitIsBisonsStack)
{
    // bison's YYMAXDEPTH: PHP fails with "memory exhausted" from 9995 '~'
    // and 9994 '(' on a `name = ` line (thresholds measured with php 8.2)
    EXPECT_EQ(val(std::string(9994, '~') + "1"), "1");
    EXPECT_EQ(val(std::string(9993, '~') + "1"), "-2");
    EXPECT_EQ(val(std::string(9993, '(') + "1" + std::string(9993, ')')), "1");
    Result a = parse("a = " + std::string(9995, '~') + "1");
    EXPECT_EQ(a.rc, -E2BIG);
    EXPECT_EQ(a.err, "memory exhausted");
    Result b = parse("a = " + std::string(9994, '(') + "1" + std::string(9994, ')'));
    EXPECT_EQ(b.rc, -E2BIG);
    Result c = parse("a[k] = " + std::string(9993, '~') + "1");
    EXPECT_EQ(c.rc, -E2BIG);
    // far deeper input is refused the same way, without recursion
    Result d = parse("a = " + std::string(1 << 20, '('));
    EXPECT_EQ(d.rc, -E2BIG);
}

// ------------------------------------------------------ stock Debian files

TEST(RfIni, StockWwwConfExcerpt)
{
    // the active lines of Debian's pool.d/www.conf plus a few of its comments
    const char text[] = "; Start a new pool named 'www'.\n"
                        "; the variable $pool can be used in any directive and will be replaced by "
                        "the\n; pool name ('www' here)\n[www]\n\n"
                        ";prefix = /path/to/pools/$pool\n\n"
                        "user = www-data\ngroup = www-data\n\n"
                        ";   'port'                 - to listen on a TCP socket to all addresses\n"
                        "listen = /run/php/php8.2-fpm.sock\n"
                        "listen.owner = www-data\nlisten.group = www-data\n"
                        ";listen.mode = 0660\n"
                        "pm = dynamic\npm.max_children = 5\npm.start_servers = 2\n"
                        "pm.min_spare_servers = 1\npm.max_spare_servers = 3\n"
                        ";access.format = \"%R - %u %t \\\"%m %r%Q%q\\\" %s %f %{milli}d "
                        "%{kilo}M %C%%\"\n"
                        ";php_admin_value[memory_limit] = 32M\n";
    Result r = parse(std::string(text, sizeof(text) - 1));
    ASSERT_EQ(r.rc, 0) << r.err;
    std::vector<std::string> want = {"S:www@4",
                                     "E:www|user=www-data@8",
                                     "E:www|group=www-data@9",
                                     "E:www|listen=/run/php/php8.2-fpm.sock@12",
                                     "E:www|listen.owner=www-data@13",
                                     "E:www|listen.group=www-data@14",
                                     "E:www|pm=dynamic@16",
                                     "E:www|pm.max_children=5@17",
                                     "E:www|pm.start_servers=2@18",
                                     "E:www|pm.min_spare_servers=1@19",
                                     "E:www|pm.max_spare_servers=3@20"};
    EXPECT_EQ(r.ev, want);
}

TEST(RfIni, StockExamplesUncommented)
{
    // every commented-out example directive of the stock www.conf, as
    // parse_ini_string() evaluates it
    const std::pair<const char *, const char *> cases[] = {
        {"prefix = /path/to/pools/$pool", "E:-|prefix=/path/to/pools/$pool@1"},
        {"listen.mode = 0660", "E:-|listen.mode=0660@1"},
        {"listen.acl_users =", "E:-|listen.acl_users=@1"},
        {"listen.allowed_clients = 127.0.0.1", "E:-|listen.allowed_clients=127.0.0.1@1"},
        {"pm.process_idle_timeout = 10s;", "E:-|pm.process_idle_timeout=10s@1"},
        {"pm.status_listen = 127.0.0.1:9001", "E:-|pm.status_listen=127.0.0.1:9001@1"},
        {"access.format = \"%R - %u %t \\\"%m %r%Q%q\\\" %s %f %{milli}d %{kilo}M %C%%\"",
         "E:-|access.format=%R - %u %t \"%m %r%Q%q\" %s %f %{milli}d %{kilo}M %C%%@1"},
        {"access.suppress_path[] = /health_check.php",
         "E:-|access.suppress_path[]=/health_check.php@1"},
        {"slowlog = log/$pool.log.slow", "E:-|slowlog=log/$pool.log.slow@1"},
        {"request_terminate_timeout_track_finished = no",
         "E:-|request_terminate_timeout_track_finished=@1"},
        {"chroot =", "E:-|chroot=@1"},
        {"catch_workers_output = yes", "E:-|catch_workers_output=1@1"},
        {"security.limit_extensions = .php .php3 .php4 .php5 .php7",
         "E:-|security.limit_extensions=.php .php3 .php4 .php5 .php7@1"},
        {"env[HOSTNAME] = $HOSTNAME", "E:-|env[HOSTNAME]=$HOSTNAME@1"},
        {"php_flag[display_errors] = off", "E:-|php_flag[display_errors]=@1"},
        {"php_admin_value[memory_limit] = 32M", "E:-|php_admin_value[memory_limit]=32M@1"},
    };
    for (const auto &c : cases) {
        Result r = parse(c.first);
        ASSERT_EQ(r.rc, 0) << c.first;
        ASSERT_EQ(r.ev.size(), 1u) << c.first;
        EXPECT_EQ(r.ev[0], c.second);
    }
}

TEST(RfIni, InstalledDebianFiles)
{
    bool ok_pool = false, ok_main = false;
    std::string pool = slurp("/etc/php/8.2/fpm/pool.d/www.conf", &ok_pool);
    std::string main = slurp("/etc/php/8.2/fpm/php-fpm.conf", &ok_main);
    if (!ok_pool || !ok_main)
        GTEST_SKIP() << "php8.2-fpm's stock configuration is not installed";
    Result p = parse(pool);
    ASSERT_EQ(p.rc, 0) << p.err << " at line " << p.line;
    ASSERT_FALSE(p.ev.empty());
    EXPECT_EQ(p.ev[0].rfind("S:www@", 0), 0u) << p.ev[0];
    bool saw_pm = false;
    for (const auto &e : p.ev)
        saw_pm |= e.rfind("E:www|pm=", 0) == 0;
    EXPECT_TRUE(saw_pm);

    Result m = parse(main);
    ASSERT_EQ(m.rc, 0) << m.err << " at line " << m.line;
    bool saw_include = false;
    for (const auto &e : m.ev)
        saw_include |= e.rfind("E:global|include=", 0) == 0 && e.find("pool.d/*.conf") != e.npos;
    EXPECT_TRUE(saw_include);
}

// ------------------------------------------------------------------- helpers

TEST(RfIni, Bool)
{
    int v = -1;
    for (const char *t : {"1", "yes", "true", "on"}) {
        EXPECT_EQ(rf_ini_bool(t, &v), 0) << t;
        EXPECT_EQ(v, 1);
    }
    for (const char *f : {"", "0", "no", "none", "false", "off"}) {
        EXPECT_EQ(rf_ini_bool(f, &v), 0) << f;
        EXPECT_EQ(v, 0);
    }
    // php-fpm 8.2 compares case-sensitively: a quoted "Yes" is invalid
    for (const char *bad : {"Yes", "2", "maybe", " 1", "1 ", "TRUE"})
        EXPECT_EQ(rf_ini_bool(bad, &v), -EINVAL) << bad;
    EXPECT_EQ(rf_ini_bool(nullptr, &v), -EINVAL);
}

TEST(RfIni, Int)
{
    const std::pair<const char *, long> ok[] = {
        {"0", 0},
        {"5", 5},
        {"-1", -1},
        {"0012", 12},
        {"", 0},
        {"-", 0},
        {"2147483647", 2147483647L},
        {"4294967297", 1},
        {"99999999999", 1215752191},
    };
    for (const auto &c : ok) {
        long v = -7;
        EXPECT_EQ(rf_ini_int(c.first, &v), 0) << c.first;
        EXPECT_EQ(v, c.second) << c.first;
    }
    long v;
    for (const char *bad : {"+5", "1x", " 1", "1 ", "0x5", "--1", "1-", "1.5"})
        EXPECT_EQ(rf_ini_int(bad, &v), -EINVAL) << bad;
}

TEST(RfIni, Time)
{
    const std::pair<const char *, long> ok[] = {
        {"0", 0},
        {"10", 10},
        {"10s", 10},
        {"5m", 300},
        {"2h", 7200},
        {"1d", 86400},
        {"-5s", -5},
        {"m", 0},
        {"abc5", 0},
        {"1.5m", 60},
        {"5 m", 300},
        {"s", 0},
        {"99999999d", -1474285952L},
    };
    for (const auto &c : ok) {
        long v = -7;
        EXPECT_EQ(rf_ini_time(c.first, &v), 0) << c.first;
        EXPECT_EQ(v, c.second) << c.first;
    }
    long v;
    for (const char *bad : {"", "5M", "5x", "10 ", "5S"})
        EXPECT_EQ(rf_ini_time(bad, &v), -EINVAL) << bad;
}

// ------------------------------------------------------- fuzz corpus replay

TEST(RfIni, FuzzCorpusReplays)
{
    std::string dir;
    if (const char *s = getenv("RF_SOURCE_DIR"))
        dir = std::string(s) + "/tests/fuzz/corpus/ini";
    else
#ifdef RF_SOURCE_DIR
        dir = std::string(RF_SOURCE_DIR) + "/tests/fuzz/corpus/ini";
#else
        dir = "tests/fuzz/corpus/ini";
#endif
    DIR *d = opendir(dir.c_str());
    if (!d)
        GTEST_SKIP() << "corpus not found at " << dir << " (set RF_SOURCE_DIR)";
    int n = 0;
    while (struct dirent *de = readdir(d)) {
        if (de->d_name[0] == '.')
            continue;
        bool ok = false;
        std::string data = slurp((dir + "/" + de->d_name).c_str(), &ok);
        ASSERT_TRUE(ok) << de->d_name;
        for (unsigned flags : {0u, unsigned(RF_INI_BARE), unsigned(RF_INI_WHOLE)}) {
            Result r = parse(data, flags);
            EXPECT_TRUE(r.rc == 0 || r.rc == -EINVAL || r.rc == -E2BIG) << de->d_name;
            if (r.rc < 0) {
                EXPECT_FALSE(r.err.empty()) << de->d_name;
            }
        }
        n++;
    }
    closedir(d);
    EXPECT_GT(n, 0);
}
