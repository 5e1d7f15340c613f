"""The status page in every format, side by side with the real php-fpm 8.2.

php-fpm8.2 (/usr/sbin/php-fpm8.2, phpserver.PhpFpm) and ringfpm run at once,
each with pm.status_path and ping.path, and every format is fetched from
both over raw FastCGI: plain text (default), json, xml, html and
openmetrics, each with and without `full`, plus HEAD, ping and queries that
name several formats. Values differ (counters, pids, times); the structure
may not: the same headers in the same order and spelling, the same keys,
lines and tags in the same order, the same frame (doctype, tables, xml
declaration, separators) byte for byte once the values are blanked. What
ringfpm adds comes after php-fpm's pool fields and is exactly EXTRA_FIELDS
(openmetrics: ringfpm_* families with HELP and TYPE, counters as _total).
Every JSON body must parse, every openmetrics body must be valid text
format (# HELP, # TYPE, samples, # EOF last).

ringfpm's side uses the builtin executor (no process slots: `full` lists no
process) so it runs in sanitizer builds too; PhpPoolTest runs a PHP pool for
the per-process fields and their escaping (skipped where PHP cannot start,
as in test_pm). Without php-fpm8.2 the comparisons are skipped.

    python3 tests/integration/run.py test_status_formats
"""

import base64
import json
import os
import re
import unittest
import xml.etree.ElementTree as ET

import fcgi
import harness
import phpserver

STATUS_PATH = "/status"
PING_PATH = "/ping"
TIMEOUT = 8.0
FORMATS = ["", "json", "xml", "html", "openmetrics"]

# php-fpm 8.2's pool fields (plain/json/html names; xml with '-').
POOL_FIELDS = ["pool", "process manager", "start time", "start since", "accepted conn",
               "listen queue", "max listen queue", "listen queue len", "idle processes",
               "active processes", "total processes", "max active processes",
               "max children reached", "slow requests"]
# What ringfpm prints after them, in this order.
EXTRA_FIELDS = ["io backend", "executor requests", "queued requests", "queue full",
                "queue timeouts", "queue aborted", "executor failures", "terminated requests",
                "active connections", "requests", "protocol errors", "limit params",
                "limit body", "limit connections", "limit multiplex", "limit per connection",
                "timeouts read", "timeouts idle", "aborted requests", "records ignored",
                "get values", "unknown types", "unknown roles", "spilled bodies",
                "accept errors", "receive buffer shortages", "responder threads"]
EXTRA_GAUGES = {"active connections", "responder threads"}
PROC_FIELDS = ["pid", "state", "start time", "start since", "requests", "request duration",
               "request method", "request uri", "content length", "user", "script",
               "last request cpu", "last request memory"]

OM_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
OM_TYPES = ("counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary",
            "unknown")
OM_SUFFIXES = {"counter": ("_total", "_created"), "info": ("_info",),
               "summary": ("_count", "_sum", "_created", ""),
               "histogram": ("_count", "_sum", "_bucket", "_created"),
               "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
               "gauge": ("",), "stateset": ("",), "unknown": ("",)}


def setUpModule():
    reason = phpserver.missing_reason("php-fpm")
    if reason:
        raise unittest.SkipTest(reason)


def xml_name(name):
    return name.replace(" ", "-")


def fetch(address, query="", method="GET", path=STATUS_PATH):
    params = fcgi.default_params(path, query, method)
    with fcgi.Connection(address, TIMEOUT) as conn:
        response = conn.request(params, keep_conn=False, timeout=TIMEOUT)
    if response.protocol_status != fcgi.REQUEST_COMPLETE:
        raise AssertionError("%s?%s: protocol status %s" % (path, query, response.protocol_status))
    return response


# ---- structure of each format: (pool keys, [proc keys...], skeleton) --------
#
# The skeleton is the body with every value blanked, ringfpm's extra fields
# and every process entry taken out (one "[procs]" marker where they were).

def shape_text(body):
    pool, procs, skel = [], [], []
    blocks = body.split("\n************************\n")
    for line in blocks[0].split("\n"):
        if line == "":
            skel.append("")
            continue
        m = re.match(r"^([a-zA-Z ]+):( +)(.*)$", line)
        assert m, "not a 'name: value' line: %r" % line
        pool.append(m.group(1))
        if m.group(1) not in EXTRA_FIELDS:
            skel.append(m.group(1) + ":" + m.group(2))
    for block in blocks[1:]:
        keys = []
        for line in block.rstrip("\n").split("\n"):
            m = re.match(r"^([a-zA-Z ]+):( +)(.*)$", line)
            assert m, "not a 'name: value' line in a process block: %r" % line
            keys.append((m.group(1), len(m.group(1)) + 1 + len(m.group(2))))
        procs.append(keys)
    while skel and skel[-1] == "":
        skel.pop()  # the process blocks (if any) follow: "\n****...\n"
    return pool, procs, "\n".join(skel)


def shape_json(body):
    pairs = json.loads(body, object_pairs_hook=lambda kv: kv)
    pool = [k for k, _ in pairs if k != "processes"]
    procs = []
    for k, v in pairs:
        if k == "processes":
            procs = [[pk for pk, _ in p] for p in v]
    assert len(set(pool)) == len(pool), "duplicate keys: %r" % pool
    skel = "{pool}" + (", \"processes\":[procs]}" if "\"processes\":[" in body else "}")
    if "\"processes\":[" in body:
        assert re.search(r"\d, \"processes\":\[", body), body[-300:]
        assert body.endswith("]}"), body[-100:]
    return pool, procs, skel


def shape_xml(body):
    root = ET.fromstring(body)
    assert root.tag == "status", root.tag
    pool = [child.tag for child in root if child.tag != "processes"]
    procs = []
    for child in root:
        if child.tag == "processes":
            procs = [[f.tag for f in p] for p in child]
            assert all(p.tag == "process" for p in child)
    skel = re.sub(r">[^<\n]*</", "></", body)
    skel = re.sub(r"<process>.*?</process>\n", "", skel)
    for name in EXTRA_FIELDS:
        skel = skel.replace("<%s></%s>\n" % (xml_name(name), xml_name(name)), "")
    return pool, procs, skel


def shape_html(body):
    ET.fromstring(body)  # XHTML: well-formed XML
    pool = re.findall(r"<tr><th>([^<]*)</th><td>", body)
    m = re.search(r"<table border=\"1\">\n<tr>((?:<th>[^<]*</th>)+)</tr>\n", body)
    procs = []
    if m:
        heads = re.findall(r"<th>([^<]*)</th>", m.group(1))
        for row in re.findall(r"^<tr>((?:<td>[^<]*</td>)+)</tr>$", body, re.M):
            assert row.count("<td>") == len(heads), row
            procs.append(heads)
    skel = re.sub(r"<td>[^<]*</td>", "<td></td>", body)
    skel = re.sub(r"^<tr>(<td></td>)+</tr>\n", "", skel, flags=re.M)
    for name in EXTRA_FIELDS:
        skel = skel.replace("<tr><th>%s</th><td></td></tr>\n" % name, "")
    return pool, procs, skel


def shape_openmetrics(body):
    """(families in order, [], skeleton of php-fpm's part with values blanked)."""
    lines = body.split("\n")
    families = []
    skel = []
    for line in lines:
        m = re.match(r"^# (HELP|TYPE) (\S+)", line)
        if m and m.group(2) not in families:
            families.append(m.group(2))
        if line.startswith("# ") or line == "":
            if not re.match(r"^# (HELP|TYPE) ringfpm_", line):
                skel.append(line)
        elif not line.startswith("ringfpm_"):
            skel.append(re.sub(r" \S+$", " #", line))
    return families, [], "\n".join(skel)


SHAPES = {"": shape_text, "json": shape_json, "xml": shape_xml, "html": shape_html,
          "openmetrics": shape_openmetrics}


def check_openmetrics(test, body, strict_names=()):
    """Every line valid OpenMetrics text: metadata before samples of its
    family, known types, samples of a declared family with the type's
    suffixes, numeric values, '# EOF' last. Families whose names start with
    one of strict_names must also use the exact suffixes (_total)."""
    test.assertTrue(body.endswith("# EOF\n"), body[-200:])
    lines = body[:-1].split("\n")
    test.assertEqual(lines[-1], "# EOF")
    types, helps, sampled, done = {}, set(), [], set()
    current = None
    for line in lines[:-1]:
        test.assertNotEqual(line, "", "blank line in openmetrics output")
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE|UNIT) (%s) (.*)$" % OM_NAME, line)
            test.assertTrue(m, "bad metadata line %r" % line)
            kind, name, rest = m.groups()
            if current != name:
                test.assertNotIn(name, done, "family %s is interleaved" % name)
                if current:
                    done.add(current)
                current = name
            test.assertNotIn(name, sampled, "metadata after samples: %r" % line)
            if kind == "TYPE":
                test.assertIn(rest, OM_TYPES, line)
                test.assertNotIn(name, types, "two TYPE lines for %s" % name)
                types[name] = rest
            elif kind == "HELP":
                test.assertNotIn(name, helps, "two HELP lines for %s" % name)
                helps.add(name)
            continue
        m = re.match(r"^(%s)(\{[^}]*\})? (\S+)( \S+)?$" % OM_NAME, line)
        test.assertTrue(m, "bad sample line %r" % line)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        float(value)  # a number (raises otherwise)
        if labels:
            test.assertRegex(labels, r'^\{(%s="(?:[^"\\\n]|\\.)*"(,%s="(?:[^"\\\n]|\\.)*")*)?\}$'
                             % (OM_NAME, OM_NAME), line)
        family = None
        for fam, kind in types.items():
            suffixes = OM_SUFFIXES[kind]
            lax = not fam.startswith(tuple(strict_names))
            if any(name == fam + s for s in suffixes) or (lax and name == fam):
                family = fam
        test.assertIsNotNone(family, "sample %r of no declared family (or wrong suffix)" % line)
        test.assertEqual(family, current, "sample %r outside its family's block" % line)
        sampled.append(family)
    return types


class Peers:
    """php-fpm and ringfpm side by side."""

    php_pool = None       # None: ringfpm's builtin executor
    workers = 2

    @classmethod
    def ringfpm_server(cls):
        opts = {"pm.status_path": STATUS_PATH, "ping.path": PING_PATH, "pm": "static",
                "pm.max_children": str(cls.workers)}
        if cls.php_pool:
            return phpserver.RingFpmPhp(None, {"www": dict(opts, **{"executor.type": "php"})})
        return harness.RingFpm(None, {"www": opts})

    @classmethod
    def setUpClass(cls):
        cls.fpm = phpserver.PhpFpm(None, {"www": phpserver.pool_config(
            dict({"pm.status_path": STATUS_PATH, "ping.path": PING_PATH},
                 **cls.fpm_extra()), cls.workers, "static")})
        cls.rf = None
        try:
            cls.fpm.start()
            cls.rf = cls.ringfpm_server()
            cls.rf.start()
        except BaseException:
            cls.fpm.cleanup()
            if cls.rf:
                cls.rf.cleanup()
            raise

    @classmethod
    def fpm_extra(cls):
        return {}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.rf.stop()
            cls.fpm.stop()
        finally:
            cls.rf.cleanup()
            cls.fpm.cleanup()

    def both(self, query="", method="GET", path=STATUS_PATH):
        return (fetch(self.fpm_status_address(), query, method, path),
                fetch(self.rf.address, query, method, path))

    def fpm_status_address(self):
        return self.fpm.address

    def compare(self, fmt, full):
        query = "&".join(x for x in (fmt, "full" if full else "") if x)
        fpm, rf = self.both(query)
        self.assertEqual(rf.headers, fpm.headers, "headers of ?%s" % query)
        fpm_body, rf_body = fpm.body.decode("utf-8"), rf.body.decode("utf-8")
        shape = SHAPES[fmt]
        fpm_pool, fpm_procs, fpm_skel = shape(fpm_body)
        rf_pool, rf_procs, rf_skel = shape(rf_body)
        if fmt == "openmetrics":
            php_families = [f for f in fpm_pool]
            self.assertEqual(rf_pool[:len(php_families)], php_families)
            extra = ["ringfpm_io_backend"] + ["ringfpm_" + n.replace(" ", "_")
                                              for n in EXTRA_FIELDS[1:]]
            self.assertEqual(rf_pool[len(php_families):], extra)
            self.assertEqual(rf_skel, fpm_skel, "openmetrics: php-fpm's lines differ")
            check_openmetrics(self, fpm_body)
            types = check_openmetrics(self, rf_body, strict_names=("ringfpm_",))
            for name in EXTRA_FIELDS[1:]:
                family = "ringfpm_" + name.replace(" ", "_")
                self.assertEqual(types[family], "gauge" if name in EXTRA_GAUGES else "counter")
            self.assertEqual(types["ringfpm_io_backend"], "info")
            return fpm_body, rf_body
        names = [xml_name(n) for n in POOL_FIELDS] if fmt == "xml" else POOL_FIELDS
        extras = [xml_name(n) for n in EXTRA_FIELDS] if fmt == "xml" else EXTRA_FIELDS
        self.assertEqual(fpm_pool, names, "php-fpm's own fields changed? ?%s" % query)
        self.assertEqual(rf_pool, names + extras, "?%s" % query)
        self.assertEqual(rf_skel, fpm_skel, "?%s: the frame differs" % query)
        self.assertEqual(bool(fpm_procs), full, "php-fpm lists its processes with full only")
        expected = self.proc_keys(fmt)
        for keys in fpm_procs + rf_procs:
            self.assertEqual(keys, expected, "?%s" % query)
        if full and self.php_pool:
            self.assertEqual(len(rf_procs), self.workers, rf_body)
        elif not self.php_pool:
            self.assertEqual(rf_procs, [], "a builtin pool has no processes")
        if fmt == "json":
            fj, rj = json.loads(fpm_body), json.loads(rf_body)
            for key in POOL_FIELDS:
                self.assertIs(type(rj[key]), type(fj[key]), key)
            for p in rj.get("processes", []):
                for key in PROC_FIELDS:
                    self.assertIs(type(p[key]), type(fj["processes"][0][key]), key)
        return fpm_body, rf_body

    @staticmethod
    def proc_keys(fmt):
        if fmt == "":
            names = [n.replace("request uri", "request URI") for n in PROC_FIELDS]
            return [(n, 22) for n in names]  # every value at php-fpm's column 22
        if fmt == "xml":
            return [xml_name(n) for n in PROC_FIELDS]
        return PROC_FIELDS


class BuiltinPoolTest(Peers, unittest.TestCase):
    """ringfpm's builtin executor against php-fpm: the pool part, the frames
    and headers, the format precedence, HEAD and ping."""

    def test_plain(self):
        fpm, rf = self.compare("", False)
        # php-fpm's column: every value starts at 22
        for line in rf.split("\n")[:len(POOL_FIELDS)]:
            self.assertRegex(line, r"^[a-z ]+: +\S", line)
            self.assertEqual(len(re.match(r"^[a-z ]+: +", line).group(0)), 22, line)

    def test_plain_full(self):
        self.compare("", True)

    def test_json(self):
        self.compare("json", False)

    def test_json_full(self):
        _, rf = self.compare("json", True)
        self.assertEqual(json.loads(rf)["processes"], [])

    def test_xml(self):
        self.compare("xml", False)

    def test_xml_full(self):
        self.compare("xml", True)

    def test_html(self):
        self.compare("html", False)

    def test_html_full(self):
        self.compare("html", True)

    def test_openmetrics(self):
        self.compare("openmetrics", False)

    def test_openmetrics_full_is_openmetrics(self):
        fpm, rf = self.compare("openmetrics", True)
        self.assertNotIn("pid", rf)

    def test_values_agree_between_formats(self):
        counters = json.loads(fetch(self.rf.address, "json").body)
        self.assertEqual(counters["pool"], "www")
        self.assertEqual(counters["process manager"], "static")
        text = fetch(self.rf.address, "xml").body.decode()
        root = ET.fromstring(text)
        self.assertEqual(root.find("pool").text, "www")
        self.assertEqual(int(root.find("start-time").text), counters["start time"])
        self.assertEqual(root.find("io-backend").text, counters["io backend"])
        om = fetch(self.rf.address, "openmetrics").body.decode()
        self.assertIn("# HELP phpfpm_up Could pool www using a static PM on PHP-FPM be reached?",
                      om)
        self.assertRegex(om, r'\nringfpm_io_backend_info\{backend="%s"\} 1\n'
                         % counters["io backend"])
        self.assertRegex(om, r"\nringfpm_responder_threads %d\n" % counters["responder threads"])

    def test_precedence_of_format_keys(self):
        for query in ["json&openmetrics", "openmetrics&json", "html&xml&json", "xml&json",
                      "json&html", "openmetrics&xml", "JSON", "Json&full", "full=0&json=x",
                      "js%6Fn", "json[]=1", "+json", "json[", "xml=&full=", "a=1&b=2",
                      "json&xml&openmetrics&html&full"]:
            fpm, rf = self.both(query)
            self.assertEqual(rf.headers, fpm.headers, query)
            self.assertEqual(rf.body[:1], fpm.body[:1], query)

    def test_head_is_headers_only(self):
        for query in FORMATS + ["full"]:
            fpm, rf = self.both(query, "HEAD")
            self.assertEqual(rf.stdout, fpm.stdout, "HEAD ?%s" % query)
            self.assertTrue(rf.stdout.endswith(b"\r\n\r\n"), rf.stdout)

    def test_ping(self):
        for method in ("GET", "HEAD", "POST"):
            fpm, rf = self.both("", method, PING_PATH)
            self.assertEqual(rf.stdout, fpm.stdout, method)

    def test_headers_are_php_fpm_s(self):
        expected = {
            "": "text/plain;charset=UTF-8",
            "json": "application/json",
            "xml": "text/xml;charset=UTF-8",
            "html": "text/html;charset=UTF-8",
            "openmetrics": "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
        for fmt, ctype in expected.items():
            response = fetch(self.rf.address, fmt)
            self.assertEqual(response.header("Content-Type"), ctype)
            self.assertEqual(response.header("Expires"), "Thu, 01 Jan 1970 00:00:00 GMT")
            self.assertEqual(response.header("Cache-Control"),
                             "no-cache, no-store, must-revalidate, max-age=0")


class PhpPoolTest(Peers, unittest.TestCase):
    """A PHP pool: the per-process fields in every format, and their
    escaping byte for byte against php-fpm. php-fpm answers the status page
    on pm.status_listen, so its one worker stays Idle with the last request
    (ringfpm answers on the responder: its executor is never busy with it)."""

    php_pool = True
    workers = 1

    @classmethod
    def setUpClass(cls):
        reason = phpserver.missing_reason("ringfpm")
        if reason:
            raise unittest.SkipTest(reason)
        cls.status_port = harness.free_tcp_port()
        super().setUpClass()

    @classmethod
    def fpm_extra(cls):
        return {"pm.status_listen": "127.0.0.1:%d" % cls.status_port}

    def fpm_status_address(self):
        return ("127.0.0.1", self.status_port)

    def run_script(self, query=b"", method=b"GET", user=None):
        script = os.path.join(harness.PHP_SCRIPTS, "hello.php")
        params = [("SCRIPT_FILENAME", script), ("SCRIPT_NAME", "/hello.php"),
                  ("REQUEST_METHOD", method), ("QUERY_STRING", query),
                  ("REQUEST_URI", b"/hello.php?" + query)]
        if user is not None:
            params.append(("HTTP_AUTHORIZATION",
                           b"Basic " + base64.b64encode(user + b":pw")))
        for server in (self.fpm, self.rf):
            with fcgi.Connection(server.address, TIMEOUT) as conn:
                response = conn.request(params, keep_conn=False, timeout=TIMEOUT)
            self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)

    def test_every_format_full(self):
        self.run_script(b"a=1")
        for fmt in FORMATS:
            for full in (False, True):
                self.compare(fmt, full)

    def test_the_idle_executor_shows_its_last_request(self):
        self.run_script(b"x=1&y=2")
        fpm, rf = self.both("json&full")
        p_fpm = json.loads(fpm.body)["processes"][0]
        p_rf = json.loads(rf.body)["processes"][0]
        for p in (p_fpm, p_rf):
            self.assertEqual(p["state"], "Idle")
            self.assertEqual(p["request uri"], "/hello.php?x=1&y=2")
            self.assertEqual(p["request method"], "GET")
            self.assertEqual(p["script"], os.path.join(harness.PHP_SCRIPTS, "hello.php"))

    def field(self, fmt, body):
        """(request uri, user, method) of the one process, raw bytes."""
        if fmt == "json":
            m = re.search(rb'"request method":"(.*?)","request uri":"(.*?)",.*"user":"(.*?)",'
                          rb'"script"', body)
            return m.group(2), m.group(3), m.group(1)
        if fmt == "xml":
            get = lambda tag: re.search(rb"<%s>(.*?)</%s>" % (tag, tag), body, re.S).group(1)
            return get(b"request-uri"), get(b"user"), get(b"request-method")
        if fmt == "html":
            row = re.search(rb"^<tr><td>(.*)</td></tr>$", body, re.M | re.S).group(1)
            cells = row.split(b"</td><td>")
            return cells[7], cells[9], cells[6]
        get = lambda name: re.search(rb"\n%s: +(.*?)\n" % name, body, re.S).group(1)
        return get(b"request URI"), get(b"user"), get(b"request method")

    def test_escaping_is_php_fpm_s(self):
        cases = [
            (b'q<&"\'>\xc3\xa9\x01\x7f\xf0\x9f\x98\x80/\\', b'u<&"\'>\xc3\xa9', b"GET"),
            (b"a\xc2\x80b\xef\xbf\xbe\xef\xb7\x90\t\n\r\x1f", b"plain", b"G<&>\"'"),
            (b"bad\xffutf8\xed\xa0\x80\xc0\x80end", b"u\xff", b"POST"),
            (b"&amp;\xf4\x8f\xbf\xbf", b"", b"GET"),
        ]
        for query, user, method in cases:
            self.run_script(query, method, user if user else None)
            for fmt in ("", "json", "xml", "html"):
                fpm, rf = self.both(fmt + "&full" if fmt else "full")
                self.assertEqual(self.field(fmt, rf.stdout), self.field(fmt, fpm.stdout),
                                 "?%s for %r" % (fmt, query))


if __name__ == "__main__":
    unittest.main()
