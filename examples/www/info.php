<?php
// What nginx passed over FastCGI, as PHP sees it, and the form's POST echoed back.
require __DIR__ . '/_layout.php';

const KEYS = [
    'REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME',
    'DOCUMENT_ROOT', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE',
    'GATEWAY_INTERFACE', 'SERVER_ADDR', 'SERVER_PORT', 'REMOTE_ADDR', 'REMOTE_PORT',
    'HTTP_HOST', 'HTTP_USER_AGENT', 'HTTP_COOKIE', 'FCGI_ROLE', 'PHP_SELF', 'USER', 'HOME',
];

page_start('ringfpm demo: info.php');
?>
<h1>info.php <small><?= h($_SERVER['REQUEST_METHOD'] ?? '') ?> request</small></h1>

<?php if ($_SERVER['REQUEST_METHOD'] === 'POST'): ?>
<h2>Your form</h2>
<div class="echo">
  <p><strong><?= h($_POST['name'] ?? '(no name)') ?></strong> wrote:</p>
  <p><?= nl2br(h($_POST['message'] ?? '(no message)')) ?></p>
</div>
<p class="muted"><?= (int) ($_SERVER['CONTENT_LENGTH'] ?? 0) ?> bytes of
  <?= h($_SERVER['CONTENT_TYPE'] ?? '?') ?>, sent by nginx as FastCGI STDIN.</p>
<?php endif ?>

<h2>Selected <code>$_SERVER</code> keys</h2>
<table>
<?php foreach (KEYS as $key): ?>
  <tr><th><?= h($key) ?></th><td><?= isset($_SERVER[$key]) ? h($_SERVER[$key]) : '<span class="muted">unset</span>' ?></td></tr>
<?php endforeach ?>
  <tr><th>REQUEST_TIME_FLOAT</th><td><?= h(sprintf('%.4f', $_SERVER['REQUEST_TIME_FLOAT'])) ?> (<?= h(date('Y-m-d H:i:s T', (int) $_SERVER['REQUEST_TIME_FLOAT'])) ?>)</td></tr>
</table>

<h2>Try it</h2>
<form method="post" action="/info.php?from=form">
  <p><label>Name <input name="name" value="<?= h($_POST['name'] ?? 'ringfpm') ?>" maxlength="100"></label></p>
  <p><label>Message<br><textarea name="message" rows="3" maxlength="2000"><?= h($_POST['message'] ?? 'Hello over FastCGI!') ?></textarea></label></p>
  <p><button type="submit">POST again</button></p>
</form>
<?php
page_end();
