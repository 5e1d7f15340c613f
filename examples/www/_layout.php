<?php
// Shared by index.php and info.php: the page frame and an HTML escaper.
// Requested by itself it is not a page.
if (get_included_files()[0] === __FILE__) {
    http_response_code(404);
    exit;
}

function h(mixed $v): string
{
    return htmlspecialchars((string) $v, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

// The process title ringfpm gives its executors ("ringfpm: pool www"); under
// php-fpm the same page shows "php-fpm: pool www".
function process_title(): string
{
    $cmdline = @file_get_contents('/proc/self/cmdline');
    return $cmdline === false ? '?' : trim(str_replace("\0", ' ', $cmdline));
}

function page_start(string $title): void
{
    header('Content-Type: text/html; charset=UTF-8');
    ?><!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title><?= h($title) ?></title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; --muted: #888; --line: #8884; --accent: #2a7ae2; }
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; }
  h1 small { font-weight: normal; color: var(--muted); font-size: 1rem; }
  h2 { font-size: 1.1rem; margin-top: 2rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { white-space: nowrap; font-weight: 600; width: 1%; }
  td { font-family: ui-monospace, monospace; font-size: .9rem; overflow-wrap: anywhere; }
  a { color: var(--accent); }
  input, textarea, button { font: inherit; padding: .3rem .5rem; }
  textarea { width: 100%; box-sizing: border-box; }
  .echo { border-left: 4px solid var(--accent); padding: .2rem 1rem; margin: 1rem 0; }
  .muted, footer { color: var(--muted); font-size: .9rem; }
  footer { margin-top: 3rem; }
</style>
</head>
<body>
<?php
}

function page_end(): void
{
    ?>
<footer>
  <a href="/">home</a> · <a href="/info.php">info.php</a> ·
  <a href="/ping">/ping</a> · <a href="/status?json">/status?json</a>
  — pm.status_path and ping.path are answered by ringfpm's responder, no PHP involved.
</footer>
</body>
</html>
<?php
}
