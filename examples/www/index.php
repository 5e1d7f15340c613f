<?php
// The ringfpm demo page: which server runs it, and a session counter.
require __DIR__ . '/_layout.php';

session_start();
if (isset($_GET['reset'])) {
    $_SESSION = [];
    session_regenerate_id(true);
    header('Location: /', true, 303);
    exit;
}
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;

page_start('ringfpm demo');
?>
<h1>Hello from ringfpm <small>PHP <?= h(PHP_VERSION) ?></small></h1>
<p>This page was run by a PHP executor of ringfpm, behind nginx.</p>

<table>
  <tr><th>process</th><td><?= h(process_title()) ?> (pid <?= getmypid() ?>)</td></tr>
  <tr><th>PHP</th><td><?= h(PHP_VERSION) ?>, <?= h(PHP_OS_FAMILY) ?></td></tr>
  <tr><th>php_sapi_name()</th><td><?= h(php_sapi_name()) ?></td></tr>
  <tr><th>web server</th><td><?= h($_SERVER['SERVER_SOFTWARE'] ?? '?') ?></td></tr>
  <tr><th>runs as</th><td><?= h(function_exists('posix_geteuid')
      ? (posix_getpwuid(posix_geteuid())['name'] ?? posix_geteuid()) : get_current_user()) ?></td></tr>
  <tr><th>php.ini</th><td><?= h(php_ini_loaded_file() ?: 'none') ?></td></tr>
  <tr><th>opcache</th><td><?= function_exists('opcache_get_status') && @opcache_get_status(false) ? 'on' : 'off' ?></td></tr>
</table>

<h2>Session</h2>
<p>You have loaded this page <strong id="visits"><?= (int) $_SESSION['visits'] ?></strong>
  time<?= $_SESSION['visits'] === 1 ? '' : 's' ?> in this session
  (<code><?= h(session_name()) ?></code> cookie, files in <code><?= h(session_save_path() ?: sys_get_temp_dir()) ?></code>).
  Reload to count; the pid above changes as requests land on different executors.
  <a href="/?reset=1">Start over</a>.</p>

<h2>Send a form</h2>
<form method="post" action="/info.php">
  <p><label>Name <input name="name" value="ringfpm" maxlength="100"></label></p>
  <p><label>Message<br><textarea name="message" rows="3" maxlength="2000">Hello over FastCGI!</textarea></label></p>
  <p><button type="submit">POST to /info.php</button></p>
</form>
<p class="muted"><a href="/info.php">info.php</a> echoes the form and shows what nginx passed in <code>$_SERVER</code>.</p>
<?php
page_end();
